//! `missive log import` and `log export`: a campaign half sent with a file log (a budget, then
//! `kill -9`s that leave attempts in doubt; people deferred and failed) moved into PostgreSQL, finished there by two
//! senders at once, and exported back. The real binary, a real database, the test SMTP
//! server: everyone mailed once, duplicates only of attempts in doubt and with their
//! Message-ID; `status` the same before and after each move.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::pg_send::{ENV, everyone, records, status};
use crate::support::audit::Audit;
use crate::support::harness::{Fixture, RUN_LIMIT, Run, people};
use crate::support::postgres::PgServer;
use crate::support::smtp_server::{Behavior, SmtpServer};

const PEOPLE: usize = 300;
/// The database's password, and a short lease (the senders' leases outlive them at most that).
const ENV_SHORT: [(&str, &str); 2] = [ENV[0], ("MISSIVE_LEASE", "2s")];
/// What `status --json` says of the people, which a move must not change.
const COUNTS: [&str; 6] = ["sent", "failed", "deferred", "in_doubt", "pending", "total"];

fn counts(status: &serde_json::Value) -> Vec<(&'static str, u64)> {
    COUNTS
        .iter()
        .map(|key| (*key, status[*key].as_u64().unwrap_or(u64::MAX)))
        .collect()
}

/// `missive log <args[0]> <campaign> <args[1..]…>`, with the database's password.
pub(crate) fn log(fixture: &Fixture, args: &[&str]) -> Run {
    let campaign = fixture.campaign();
    let mut all = vec!["log", args[0], campaign.to_str().unwrap()];
    all.extend_from_slice(&args[1..]);
    fixture.run(&all, &ENV)
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_move::` (bash .ci/run does)"
)]
fn a_file_log_half_sent_and_killed_moves_into_postgres_and_two_senders_finish_it_once() {
    let server = PgServer::start();
    let behavior = Behavior::accept_all().reply_delay(Duration::from_millis(30));
    let smtp = SmtpServer::start_in_background(behavior);
    let fixture = Fixture::new(&people(PEOPLE), "[smtp]\npool_size = 4\n");
    let url = server.url();

    // Half sent on the file log: a cron run's budget, then runs killed mid-way.
    let run = fixture.send(&smtp.url(), &["--max-messages", "40"]);
    assert_eq!(run.code, 75, "{}", run.all());
    for _ in 0..2 {
        let before = smtp.journal().accepted().count();
        let mut running = fixture.start_send(&smtp.url(), &[]);
        smtp.wait_until(RUN_LIMIT, |j| j.accepted().count() >= before + 30);
        assert!(running.is_running(), "the run ended before its kill");
        running.kill();
    }
    let before = fixture.status();
    let in_doubt = before["in_doubt"].as_u64().unwrap();
    assert!(in_doubt > 0, "the kills leave attempts in doubt: {before}");
    assert!(before["pending"].as_u64().unwrap() > 0, "{before}");
    let file = fixture.log_path();
    let file_records = fixture.log_records();

    let run = log(&fixture, &["import", "--to", &url]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("imported"), "{}", run.all());
    assert_eq!(fixture.log_records(), file_records, "the file is kept");
    // Without --log, status now reads the database: the same people in the same states.
    let after = status(&fixture, &[]);
    assert_eq!(counts(&after), counts(&before), "{after}");
    let state = std::fs::read_to_string(fixture.path("essai-2026.state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["log"], url.as_str());
    let imported = records(&server);
    assert_eq!(imported.len(), file_records.len(), "every record");

    // The same file again: nothing written.
    let file_arg = file.to_str().unwrap();
    let run = log(&fixture, &["import", "--from", file_arg, "--to", &url]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("already"), "{}", run.all());
    assert_eq!(records(&server), imported, "a second import writes nothing");
    // The old file is no longer the campaign's log.
    let run = fixture.send(&smtp.url(), &["--log", file_arg]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert_eq!(fixture.log_records(), file_records);

    // Two senders finish it on the database, at once.
    let sent_before = smtp.journal().accepted().count();
    let senders: Vec<_> = (0..2)
        .map(|_| fixture.start_send_with(&smtp.url(), &[], &ENV_SHORT))
        .collect();
    for sender in senders {
        let run = sender
            .wait(RUN_LIMIT)
            .unwrap_or_else(|run| panic!("{}", run.all()));
        assert!([0, 75].contains(&run.code), "{}", run.all());
    }
    let run = fixture
        .start_send_with(&smtp.url(), &[], &ENV_SHORT)
        .wait(RUN_LIMIT)
        .unwrap();
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(smtp.journal().accepted().count() > sent_before);
    let audit = Audit::of(status(&fixture, &[]), records(&server), &[smtp.journal()]);
    audit.assert_settled(&everyone(PEOPLE), &BTreeSet::new(), 0);
    let duplicates = audit.duplicates();
    eprintln!("{in_doubt} in doubt at the import, {duplicates} duplicate(s)");
    assert!(duplicates as u64 <= in_doubt, "{duplicates} duplicates");

    // Back into a file: status reads it as the database says.
    let exported = fixture.path("exported.jsonl");
    let exported_arg = exported.to_str().unwrap();
    // A sender's last renewal may land after its lease's end (ENV_SHORT's lease, 2 s): the
    // export waits (75) while any lease is live.
    let mut run = log(&fixture, &["export", "--to", exported_arg]);
    for _ in 0..20 {
        if run.code != 75 {
            break;
        }
        assert!(run.stderr.contains("senders are working"), "{}", run.all());
        assert!(!fixture.path("exported.jsonl.partial").exists());
        std::thread::sleep(Duration::from_millis(250));
        run = log(&fixture, &["export", "--to", exported_arg]);
    }
    assert_eq!(run.code, 0, "{}", run.all());
    let there = status(&fixture, &[]);
    let back = status(&fixture, &["--log", exported_arg]);
    assert_eq!(counts(&back), counts(&there), "{back}");
    let lines = std::fs::read_to_string(&exported).unwrap();
    assert_eq!(lines.lines().count(), records(&server).len() + 1);
    // Never over an existing file.
    let run = log(&fixture, &["export", "--to", exported_arg]);
    assert_eq!(run.code, 65, "{}", run.all());

    // A sender that has just begun (it holds the campaign's lock, as every sender does for its
    // connection's life, and has no lease yet): the export waits for it, or it could miss what
    // that sender writes.
    std::fs::remove_file(&exported).unwrap();
    let starting = server.session(
        "SELECT pg_advisory_lock_shared(1835627382, id) FROM missive.campaigns;",
        "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock'",
    );
    let run = log(&fixture, &["export", "--to", exported_arg]);
    assert_eq!(run.code, 75, "{}", run.all());
    assert!(run.stderr.contains("senders are working"), "{}", run.all());
    assert!(!exported.exists() && !fixture.path("exported.jsonl.partial").exists());
    drop(starting);
    let run = log(&fixture, &["export", "--to", exported_arg]);
    assert_eq!(run.code, 0, "{}", run.all());
    // The same records (below the header, which says when it was written).
    let again = std::fs::read_to_string(&exported).unwrap();
    assert!(
        again.lines().skip(1).eq(lines.lines().skip(1)),
        "another export than the first"
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_move::` (bash .ci/run does)"
)]
fn another_history_in_the_database_and_a_file_held_by_a_send_are_refused() {
    let server = PgServer::start();
    // person02 is deferred (its retry time kept), person03 fails for good.
    let smtp =
        SmtpServer::start_in_background(Behavior::accept_all().rcpt_reply(
            |address| match address {
                "person02@example.com" => Some((451, "4.7.1 try later".into())),
                "person03@example.com" => Some((550, "5.1.1 no such user".into())),
                _ => None,
            },
        ));
    let url = server.url();
    let first = Fixture::new(&people(20), "[smtp]\npool_size = 2\n");
    let run = first.send(&smtp.url(), &["--max-messages", "5"]);
    assert_eq!(run.code, 75, "{}", run.all());
    let before = first.status();
    assert_eq!(
        (before["deferred"].as_u64(), before["failed"].as_u64()),
        (Some(1), Some(1)),
        "{before}"
    );
    let run = log(&first, &["import", "--to", &url]);
    assert_eq!(run.code, 0, "{}", run.all());
    let after = status(&first, &[]);
    assert_eq!(counts(&after), counts(&before), "{after}");
    assert_eq!(after["next_retry"], before["next_retry"], "{after}");
    assert!(after["next_retry"].is_string(), "{after}");
    assert_eq!(after["failed_reasons"], before["failed_reasons"], "{after}");
    let imported = records(&server);
    assert_eq!(imported.len(), first.log_records().len());

    // A namesake (the same campaign id, another folder) with a history of its own.
    let slow = Behavior::accept_all().reply_delay(Duration::from_millis(200));
    let slow_smtp = SmtpServer::start_in_background(slow);
    let other = Fixture::new(&people(20), "[smtp]\npool_size = 2\n");
    let run = other.send(&smtp.url(), &["--max-messages", "3"]);
    assert_eq!(run.code, 75, "{}", run.all());
    let run = log(&other, &["import", "--to", &url]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("already holds a history"),
        "{}",
        run.all()
    );
    assert_eq!(records(&server), imported, "nothing written");
    let state = std::fs::read_to_string(other.path("essai-2026.state.json")).unwrap();
    assert!(
        !state.contains(&url),
        "the namesake still sends with its file: {state}"
    );

    // A send at work on the file holds it: the import waits for it to end.
    let mut running = other.start_send(&slow_smtp.url(), &[]);
    slow_smtp.wait_until(RUN_LIMIT, |j| j.accepted().count() >= 1);
    let run = log(&other, &["import", "--to", &url]);
    assert!(running.is_running());
    running.kill();
    assert_eq!(run.code, 75, "{}", run.all());
    assert_eq!(records(&server), imported, "nothing written");
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_move::` (bash .ci/run does)"
)]
fn an_import_into_a_slow_database_is_timed_by_its_statements_not_its_chunks() {
    const SENT: usize = 250;
    let server = PgServer::start();
    let smtp = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(SENT), "[smtp]\npool_size = 1\n");
    let run = fixture.send(&smtp.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    // The statements an import writes the file's 500 records in (one chunk): one for each
    // run of records that names no one twice.
    let mut statements = 1;
    let mut named = BTreeSet::new();
    for record in fixture.log_records() {
        let rcpt = record["rcpt"].as_str().unwrap().to_owned();
        if !named.insert(rcpt.clone()) {
            statements += 1;
            named = BTreeSet::from([rcpt]);
        }
    }
    assert!(statements >= 2, "{statements} statement(s)");
    // The tables, made by a sender of another campaign that has come and gone; then a database
    // slow to write records (a busy disk, a lock waited for): each of the import's statements
    // answers well within the database's answer timeout (30 s), all of them together do not.
    let target = missive::sendlog::PgTarget::parse(&server.url(), |name| {
        (name == "PGPASSWORD").then(|| PgServer::PASSWORD.to_owned())
    })
    .unwrap();
    drop(missive::sendlog::PgLog::open(&target, "another").unwrap());
    let each = 32.0 / statements as f64;
    server.sql(&format!(
        "CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_sleep({each}); RETURN NULL; END $$;
         CREATE TRIGGER slow BEFORE INSERT ON missive.records
             FOR EACH STATEMENT EXECUTE FUNCTION public.slow();"
    ));
    let started = std::time::Instant::now();
    let run = log(&fixture, &["import", "--to", &server.url()]);
    let took = started.elapsed();
    eprintln!("{statements} statements of {each:.1} s: the import took {took:?}");
    assert_eq!(run.code, 0, "after {took:?}: {}", run.all());
    assert_eq!(records(&server).len(), fixture.log_records().len());
    assert_eq!(status(&fixture, &[])["sent"], SENT as u64);
}
