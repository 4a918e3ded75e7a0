//! `missive send` and `status` with the send log in PostgreSQL: the real binary, a real
//! database the tests start ([`PgServer`]) and the test SMTP server. Everyone mailed once,
//! across budgets, `kill -9` and the database going away; a namesake's row and a password in the
//! URL refused. (Several senders sharing a campaign: `pg_multi`.)

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::audit::Audit;
use crate::support::harness::{Fixture, RUN_LIMIT, Run, people};
use crate::support::postgres::PgServer;
use crate::support::smtp_server::{Behavior, SmtpServer};

pub(crate) const POOL_SIZE: usize = 4;
pub(crate) const ENV: [(&str, &str); 1] = [("PGPASSWORD", PgServer::PASSWORD)];

/// A campaign of `n` people whose campaign file names the database as its send log.
pub(crate) fn campaign(server: &PgServer, n: usize) -> Fixture {
    Fixture::new(
        &people(n),
        &format!(
            "send_log = \"{}\"\n[smtp]\npool_size = {POOL_SIZE}\ntimeout_secs = 5\n",
            server.url()
        ),
    )
}

pub(crate) fn everyone(n: usize) -> BTreeSet<String> {
    (1..=n)
        .map(|i| format!("person{i:02}@example.com"))
        .collect()
}

fn send(fixture: &Fixture, smtp: &SmtpServer, more: &[&str]) -> Run {
    fixture
        .start_send_with(&smtp.url(), more, &ENV)
        .wait(RUN_LIMIT)
        .unwrap_or_else(|run| panic!("a run took over {RUN_LIMIT:?}: {}", run.all()))
}

/// `send` again until it exits 0 (at most `max_runs` runs).
fn send_until_done(fixture: &Fixture, smtp: &SmtpServer, max_runs: usize) {
    for _ in 0..max_runs {
        let run = send(fixture, smtp, &[]);
        assert!([0, 75].contains(&run.code), "{}", run.all());
        if run.code == 0 {
            return;
        }
    }
    panic!("not done after {max_runs} runs");
}

pub(crate) fn status(fixture: &Fixture, more: &[&str]) -> serde_json::Value {
    let campaign = fixture.campaign();
    let mut args = vec!["status", campaign.to_str().unwrap(), "--json"];
    args.extend_from_slice(more);
    let run = fixture.run(&args, &ENV);
    assert_eq!(run.code, 0, "{}", run.all());
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.all()))
}

/// The campaign's records in the database, as the file log would write them.
pub(crate) fn records(server: &PgServer) -> Vec<serde_json::Value> {
    let lines = server.sql(
        "SELECT json_build_object('event', r.event, 'rcpt', r.rcpt, 'message_id', \
         r.message_id, 'reply', r.reply, 'retry_at', r.retry_at) \
         FROM missive.records r JOIN missive.campaigns c ON c.id = r.campaign \
         WHERE c.name = 'essai-2026' ORDER BY r.seq",
    );
    lines
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn audit(fixture: &Fixture, server: &PgServer, smtp: &SmtpServer) -> Audit {
    Audit::of(status(fixture, &[]), records(server), &[smtp.journal()])
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_send::` (bash .ci/run does)"
)]
fn a_send_on_postgres_resumes_after_its_budget_and_mails_everyone_once() {
    let server = PgServer::start();
    let smtp = SmtpServer::start_in_background(Behavior::accept_all());
    // No `send_log` in the file: `--log` names the database, and the campaign remembers it.
    let fixture = Fixture::new(&people(30), "[smtp]\npool_size = 4\n");
    let url = server.url();
    let run = send(&fixture, &smtp, &["--log", &url, "--max-messages", "12"]);
    assert_eq!(run.code, 75, "{}", run.all());
    let first: BTreeSet<String> = smtp
        .journal()
        .accepted()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    assert_eq!((first.len(), smtp.journal().accepted().count()), (12, 12));
    let counts = status(&fixture, &["--log", &url]);
    assert_eq!(
        (counts["sent"].as_u64(), counts["pending"].as_u64()),
        (Some(12), Some(18))
    );
    assert!(
        !fixture.log_path().exists(),
        "no file log beside the campaign"
    );
    let state = std::fs::read_to_string(fixture.path("essai-2026.state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["log"], url.as_str());
    let uid = server.sql("SELECT uid FROM missive.campaigns WHERE name = 'essai-2026'");
    assert_eq!(state["uid"], uid.as_str());

    // Without --log: the log the campaign remembers.
    let run = send(&fixture, &smtp, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("18 sent"), "{}", run.all());
    assert!(run.stdout.contains("12 already done"), "{}", run.all());
    let audit = audit(&fixture, &server, &smtp);
    audit.assert_settled(&everyone(30), &BTreeSet::new(), 0);
    audit.assert_accepted_at_most_once();
    // The file log beside the campaign is another log: refused, naming the database.
    let default_log = fixture.log_path();
    let run = send(&fixture, &smtp, &["--log", default_log.to_str().unwrap()]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(run.stderr.contains("--new-log"), "{}", run.all());
    assert_eq!(smtp.journal().accepted().count(), 30);
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_send::` (bash .ci/run does)"
)]
fn killed_mid_run_on_postgres_then_run_to_the_end_everyone_gets_it_once() {
    const PEOPLE: usize = 200;
    const KILLS: usize = 3;
    let server = PgServer::start();
    let behavior = Behavior::accept_all().reply_delay(Duration::from_millis(40));
    let smtp = SmtpServer::start_in_background(behavior);
    let fixture = campaign(&server, PEOPLE);
    let mut random = fastrand::Rng::new();
    let mut landed = 0;
    for _ in 0..KILLS {
        let before = smtp.journal().accepted().count();
        let mut running = fixture.start_send_with(&smtp.url(), &[], &ENV);
        let progress = random.usize(1..=20);
        smtp.wait_until(RUN_LIMIT, |j| j.accepted().count() >= before + progress);
        std::thread::sleep(Duration::from_millis(random.u64(0..50)));
        if running.is_running() {
            landed += 1;
        }
        running.kill();
        audit(&fixture, &server, &smtp).assert_consistent();
    }
    assert!(landed >= KILLS - 1, "only {landed} kills came mid-run");
    send_until_done(&fixture, &smtp, 5);
    let audit = audit(&fixture, &server, &smtp);
    audit.assert_settled(&everyone(PEOPLE), &BTreeSet::new(), 0);
    let duplicates = audit.duplicates();
    eprintln!("{duplicates} duplicate(s) after {landed} kill(s)");
    assert!(
        duplicates <= 2 * POOL_SIZE * landed,
        "{duplicates} duplicates"
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_send::` (bash .ci/run does)"
)]
fn a_database_stopped_before_the_run_sends_nothing_and_mid_run_stops_it_with_75() {
    let mut server = PgServer::start();
    let behavior = Behavior::accept_all().reply_delay(Duration::from_millis(20));
    let smtp = SmtpServer::start_in_background(behavior);
    let fixture = campaign(&server, 150);

    server.stop();
    let run = send(&fixture, &smtp, &[]);
    assert_eq!(run.code, 75, "{}", run.all());
    assert!(run.stderr.contains("cannot be reached"), "{}", run.all());
    assert_eq!(smtp.connections(), 0, "nothing sent: {}", run.all());
    // A dry run never touches the send log, wherever it is.
    let catcher = SmtpServer::start_in_background(Behavior::accept_all());
    let run = send(&fixture, &catcher, &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(catcher.journal().accepted().count(), 150);

    server.start_again();
    assert_eq!(server.sql("SELECT to_regclass('missive.records')"), "");
    let running = fixture.start_send_with(&smtp.url(), &[], &ENV);
    smtp.wait_until(RUN_LIMIT, |j| j.accepted().count() >= 20);
    server.stop();
    let run = running.wait(RUN_LIMIT).expect("the run ends by itself");
    assert_eq!(run.code, 75, "{}", run.all());
    assert!(run.stderr.contains("run again"), "{}", run.all());
    let during = smtp.journal().accepted().count();
    assert!(
        during < 150,
        "the run stopped before the end: {during} sent"
    );

    server.start_again();
    send_until_done(&fixture, &smtp, 3);
    let audit = audit(&fixture, &server, &smtp);
    audit.assert_settled(&everyone(150), &BTreeSet::new(), 0);
    assert!(
        audit.duplicates() <= 2 * POOL_SIZE,
        "{}",
        audit.duplicates()
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_send::` (bash .ci/run does)"
)]
fn a_namesakes_row_in_the_database_is_refused_naming_both() {
    let server = PgServer::start();
    let smtp = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = campaign(&server, 3);
    assert_eq!(send(&fixture, &smtp, &[]).code, 0);
    let uid = server.sql("SELECT uid FROM missive.campaigns WHERE name = 'essai-2026'");
    // The database restored from a backup older than the campaign: its row is made anew.
    server.sql(
        "DELETE FROM missive.records; DELETE FROM missive.people; \
         DELETE FROM missive.senders; DELETE FROM missive.campaigns",
    );
    let run = send(&fixture, &smtp, &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    let new_uid = server.sql("SELECT uid FROM missive.campaigns WHERE name = 'essai-2026'");
    assert_ne!(uid, new_uid);
    for part in [&uid, &new_uid, "--new-log"] {
        assert!(run.stderr.contains(part), "{part}: {}", run.all());
    }
    assert_eq!(smtp.journal().accepted().count(), 3, "nobody mailed again");
    assert_eq!(server.sql("SELECT count(*) FROM missive.records"), "0");
    // Told that this row is meant, it starts over (everyone again) and remembers it.
    let run = send(&fixture, &smtp, &["--new-log"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(smtp.journal().accepted().count(), 6);
    let state = std::fs::read_to_string(fixture.path("essai-2026.state.json")).unwrap();
    assert!(state.contains(&new_uid), "{state}");
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_send::` (bash .ci/run does)"
)]
fn a_password_in_the_database_url_is_refused_and_never_printed() {
    let server = PgServer::start();
    let smtp = SmtpServer::start_in_background(Behavior::accept_all());
    let secret = "Sup3r-s3cret";
    let with_password = server
        .url()
        .replace("missive@", &format!("missive:{secret}@"));
    let fixture = Fixture::new(&people(2), "");
    for command in ["send", "status"] {
        let campaign = fixture.campaign();
        let smtp_url = smtp.url();
        let mut args = vec![command, campaign.to_str().unwrap(), "--log", &with_password];
        if command == "send" {
            args.extend(["--smtp", &smtp_url]);
        }
        let run = fixture.run(&args, &ENV);
        assert_eq!(run.code, 65, "{}", run.all());
        assert!(!run.all().contains(secret), "{}", run.all());
        assert!(run.stderr.contains("PGPASSWORD"), "{}", run.all());
    }
    let in_file = Fixture::new(&people(2), &format!("send_log = \"{with_password}\"\n"));
    let run = send(&in_file, &smtp, &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(!run.all().contains(secret), "{}", run.all());
    assert!(run.stderr.contains("send_log"), "{}", run.all());
    // A wrong password: refused by the database, 65, nothing sent.
    let fixture = campaign(&server, 2);
    let run = fixture
        .start_send_with(&smtp.url(), &[], &[("PGPASSWORD", "wrong")])
        .wait(RUN_LIMIT)
        .unwrap();
    assert_eq!(run.code, 65, "{}", run.all());
    assert_eq!(smtp.connections(), 0);
}
