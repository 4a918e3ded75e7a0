//! Several `missive send` sharing one campaign through PostgreSQL: the real binary, a real
//! database the tests start ([`PgServer`]) and a test SMTP server per sender (so each one's
//! share can be seen). Everyone mailed once; a person another sender holds is never given to a
//! server (no MAIL, no RCPT, no DATA) until that sender's lease runs out; then its in-doubt
//! attempts are taken over and resent with the same Message-ID; under `kill -9`, a connection
//! terminated and the database restarted, everyone gets the letter, a second copy only where
//! an attempt was in doubt.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::pg_send::{ENV, campaign, everyone, records, status};
use crate::support::audit::Audit;
use crate::support::harness::{Fixture, RUN_LIMIT, Run, Running, people};
use crate::support::partition::Partition;
use crate::support::postgres::PgServer;
use crate::support::smtp_server::{Behavior, Journal, SmtpServer};

/// The lease the senders of these tests hold (`MISSIVE_LEASE`): short, so a dead sender's
/// claims are taken over within the test.
const LEASE: &str = "2s";

/// A sender on the machine `host` (`MISSIVE_HOST`: a sender ends at once the leases of the
/// dead senders of its own machine, and must wait for those of others').
fn start(fixture: &Fixture, smtp: &SmtpServer, lease: &str, host: &str) -> Running {
    let env = [ENV[0], ("MISSIVE_LEASE", lease), ("MISSIVE_HOST", host)];
    fixture.start_send_with(&smtp.url(), &[], &env)
}

pub(crate) fn finish(running: Running) -> Run {
    running
        .wait(RUN_LIMIT)
        .unwrap_or_else(|run| panic!("a run took over {RUN_LIMIT:?}: {}", run.all()))
}

fn audit(fixture: &Fixture, server: &PgServer, journals: &[Journal]) -> Audit {
    Audit::of(status(fixture, &[]), records(server), journals)
}

/// What `N sent` a run's report says.
fn sent_by(run: &Run) -> u64 {
    let report = run
        .stdout
        .lines()
        .find(|l| l.contains(" sent, "))
        .unwrap_or("");
    let before = report.split(" sent, ").next().unwrap_or("");
    let n = before.rsplit(' ').next().unwrap_or("");
    n.parse()
        .unwrap_or_else(|_| panic!("no count of sent: {}", run.all()))
}

fn taken_by_others(run: &Run) -> u64 {
    run.stdout
        .split(" taken by another sender")
        .next()
        .filter(|before| before.len() < run.stdout.len())
        .and_then(|before| before.rsplit(' ').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_multi::` (bash .ci/run does)"
)]
fn three_senders_share_a_campaign_and_everyone_gets_it_once() {
    const PEOPLE: usize = 3000;
    let server = PgServer::start();
    // Two machines' copies of the campaign; the third sender runs beside the first, in the
    // same folder (no lock of the machine's holds a database log's campaign).
    let here = campaign(&server, PEOPLE);
    let there = campaign(&server, PEOPLE);
    let delay = Behavior::accept_all().reply_delay(Duration::from_millis(3));
    let smtps: Vec<SmtpServer> = (0..3)
        .map(|_| SmtpServer::start_in_background(delay.clone()))
        .collect();
    let commits = || -> u64 {
        let sql = "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'";
        server.sql(sql).parse().unwrap()
    };
    let commits_before = commits();
    let running = [
        // No sender dies here: a lease long enough that a loaded machine never loses it.
        start(&here, &smtps[0], "10s", "a"),
        start(&there, &smtps[1], "10s", "b"),
        start(&here, &smtps[2], "10s", "a"),
    ];
    // While they run, `status` counts them.
    smtps[2].wait_until(RUN_LIMIT, |j| j.accepted().count() >= 10);
    let during = status(&here, &[]);
    assert_eq!(during["senders_active"], 3, "{during}");
    let runs: Vec<Run> = running.into_iter().map(finish).collect();
    for run in &runs {
        // A sender that met people another held is done only if they were through by its end
        // (which one ends last is a race: `pg_lease::a_sender_that_met_others_people_…`).
        if taken_by_others(run) == 0 {
            assert_eq!(run.code, 0, "{}", run.all());
        } else {
            assert!([0, 75].contains(&run.code), "{}", run.all());
        }
    }
    let journals: Vec<Journal> = smtps.iter().map(SmtpServer::journal).collect();
    let audit = audit(&here, &server, &journals);
    audit.assert_settled(&everyone(PEOPLE), &BTreeSet::new(), 0);
    audit.assert_accepted_at_most_once();
    // A person another sender held never reached a server: one RCPT TO each, over all.
    let rcpts: usize = audit.rcpt_commands.values().sum();
    assert_eq!(rcpts, PEOPLE, "an RCPT TO per person, over all servers");
    let shares: Vec<usize> = journals.iter().map(|j| j.accepted().count()).collect();
    let reported: Vec<u64> = runs.iter().map(sent_by).collect();
    eprintln!("shares {shares:?}, reported sent {reported:?}");
    assert_eq!(reported.iter().sum::<u64>(), PEOPLE as u64);
    for (share, reported) in shares.iter().zip(&reported) {
        assert_eq!(
            *share as u64, *reported,
            "a sender reports what its server got"
        );
        assert!(*share > 0, "every sender took a share: {shares:?}");
    }
    let taken: u64 = runs.iter().map(taken_by_others).sum();
    assert!(taken > 0, "the senders met on people: {taken}");
    // The database sees batches, not a transaction (of a few statements) per message.
    std::thread::sleep(Duration::from_millis(600));
    let transactions = commits() - commits_before;
    let records: u64 = server
        .sql("SELECT count(*) FROM missive.records")
        .parse()
        .unwrap();
    let per_record = transactions as f64 / records as f64;
    eprintln!("{transactions} transactions for {records} records: {per_record:.3} a record");
    assert!(
        per_record < 0.5,
        "{transactions} transactions for {records} records"
    );
    let after = status(&here, &[]);
    assert_eq!(after["senders_active"], 0, "{after}");
    assert_eq!(after["sent"], PEOPLE as u64);
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_multi::` (bash .ci/run does)"
)]
fn a_killed_senders_people_are_left_alone_until_its_lease_runs_out_then_resent_once() {
    const PEOPLE: usize = 60;
    let server = PgServer::start();
    let fixture = campaign(&server, PEOPLE);
    let slow = SmtpServer::start_in_background(
        Behavior::accept_all().reply_delay(Duration::from_millis(150)),
    );
    // A long lease: the others run within it.
    let mut first = start(&fixture, &slow, "8s", "a");
    slow.wait_until(RUN_LIMIT, |j| j.accepted().count() >= 4);
    assert!(first.is_running());
    let killed = first.kill();
    let killed_at = Instant::now();
    assert_eq!(killed.code, -1, "{}", killed.all());
    let held: BTreeSet<String> = server
        .sql(
            "SELECT rcpt FROM missive.people WHERE status = 'attempt' AND owner IS NOT NULL \
             ORDER BY rcpt",
        )
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!held.is_empty(), "the killed sender held people");

    // Another sender, while the lease runs: everyone but the held.
    let quick = SmtpServer::start_in_background(Behavior::accept_all());
    // (Its own lease long enough that a loaded machine never loses it midway.)
    let second = finish(start(&fixture, &quick, "8s", "b"));
    assert!(
        killed_at.elapsed() < Duration::from_secs(8),
        "within the lease"
    );
    assert_eq!(second.code, 75, "{}", second.all());
    assert!(
        second.stdout.contains("held by another sender"),
        "{}",
        second.all()
    );
    assert_eq!(
        taken_by_others(&second),
        held.len() as u64,
        "{}",
        second.all()
    );
    let journal = quick.journal();
    for rcpt in &held {
        assert_eq!(
            journal.rcpt_count(rcpt),
            0,
            "{rcpt} held, yet given to a server"
        );
    }
    let counts = status(&fixture, &[]);
    assert_eq!(counts["in_doubt"], held.len() as u64, "{counts}");

    // Once the lease has run out, a third takes them over, same Message-ID.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(killed_at.elapsed()));
    let third = finish(start(&fixture, &quick, "8s", "b"));
    assert_eq!(third.code, 0, "{}", third.all());
    assert_eq!(sent_by(&third), held.len() as u64, "{}", third.all());
    assert!(
        third.stdout.contains("in-doubt message(s) sent again"),
        "{}",
        third.all()
    );
    let audit = audit(&fixture, &server, &[slow.journal(), quick.journal()]);
    audit.assert_settled(&everyone(PEOPLE), &BTreeSet::new(), 0);
    let duplicates = audit.duplicates();
    eprintln!(
        "{} held by the killed sender, {duplicates} accepted twice",
        held.len()
    );
    assert!(duplicates <= 2 * crate::pg_send::POOL_SIZE, "{duplicates}");
}

/// What the audit below does to its senders and the database.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill,
    Terminate,
    RestartDatabase,
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_multi::` (bash .ci/run does)"
)]
fn three_senders_under_kills_a_terminated_connection_and_a_database_restart_mail_everyone_once() {
    const PEOPLE: usize = 20_000;
    const SENDERS: usize = 3;
    let seed = fastrand::u64(..);
    eprintln!("pg_multi audit seed {seed}");
    let mut random = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let mut server = PgServer::start();
    let fixtures: Vec<Fixture> = (0..SENDERS).map(|_| campaign(&server, PEOPLE)).collect();
    let smtps: Vec<SmtpServer> = (0..SENDERS)
        .map(|_| SmtpServer::start_in_background(Behavior::accept_all()))
        .collect();
    let accepted = || -> usize { smtps.iter().map(|s| s.journal().accepted().count()).sum() };
    let mut running: Vec<Option<Running>> = (0..SENDERS)
        .map(|i| Some(start(&fixtures[i], &smtps[i], LEASE, &format!("host{i}"))))
        .collect();
    // The faults, in a random order, each once the campaign is some way further.
    let mut faults = vec![
        Fault::Kill,
        Fault::Kill,
        Fault::Kill,
        Fault::Terminate,
        Fault::RestartDatabase,
    ];
    random.shuffle(&mut faults);
    let mut done = [false; SENDERS];
    let mut codes = Vec::new();
    let limit = Duration::from_secs(240);
    while !done.iter().all(|&d| d) {
        assert!(
            started.elapsed() < limit,
            "not done in {limit:?} (seed {seed})"
        );
        if let Some(&fault) = faults.first() {
            let due = (PEOPLE / 8) * (6 - faults.len());
            if accepted() >= due {
                faults.remove(0);
                let victim = random.usize(..SENDERS);
                eprintln!("at {} accepted: {fault:?} (sender {victim})", accepted());
                match fault {
                    Fault::Kill => {
                        if let Some(sender) = running[victim].take() {
                            codes.push(sender.kill().code);
                        }
                        done[victim] = false;
                    }
                    Fault::Terminate => {
                        if let Some(sender) = &running[victim] {
                            server.sql(&format!(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                                 WHERE application_name LIKE 'missive % (pid {})'",
                                sender.pid()
                            ));
                        }
                    }
                    Fault::RestartDatabase => {
                        server.stop();
                        std::thread::sleep(Duration::from_millis(random.u64(200..1500)));
                        server.start_again();
                    }
                }
            }
        }
        for i in 0..SENDERS {
            let exited = running[i]
                .as_mut()
                .is_none_or(|sender| !sender.is_running());
            if !exited {
                continue;
            }
            if let Some(sender) = running[i].take() {
                let run = finish(sender);
                assert!([0, 75].contains(&run.code), "{}", run.all());
                codes.push(run.code);
                if run.code == 0 && faults.is_empty() {
                    done[i] = true;
                    continue;
                }
            }
            if !done[i] {
                running[i] = Some(start(&fixtures[i], &smtps[i], LEASE, &format!("host{i}")));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // What the dead left in doubt is theirs until their leases run out: then one more run.
    let mut finals = 0;
    loop {
        let counts = status(&fixtures[0], &[]);
        if counts["pending"] == 0 && counts["in_doubt"] == 0 && counts["deferred"] == 0 {
            break;
        }
        assert!(finals < 10, "not settled: {counts} (seed {seed})");
        finals += 1;
        std::thread::sleep(Duration::from_millis(500));
        let run = finish(start(&fixtures[0], &smtps[0], LEASE, "host0"));
        assert!([0, 75].contains(&run.code), "{}", run.all());
    }
    let journals: Vec<Journal> = smtps.iter().map(SmtpServer::journal).collect();
    let audit = audit(&fixtures[0], &server, &journals);
    audit.assert_settled(&everyone(PEOPLE), &BTreeSet::new(), 0);
    let shares: Vec<usize> = journals.iter().map(|j| j.accepted().count()).collect();
    eprintln!(
        "{} duplicate(s) (each an in-doubt attempt, same Message-ID), shares {shares:?}, exits \
         {codes:?}, {finals} final run(s), {:?} (seed {seed})",
        audit.duplicates(),
        started.elapsed()
    );
    assert!(
        codes.contains(&75),
        "a fault stopped a sender with 75: {codes:?}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_multi::` (bash .ci/run does)"
)]
fn a_sender_cut_off_from_the_database_stops_before_its_lease_runs_out_and_exits_75() {
    const PEOPLE: usize = 1500;
    let server = PgServer::start();
    let partition = Partition::to(server.port());
    // The cut-off sender reaches the database through the relay; the other one directly.
    let cut_off = Fixture::new(
        &people(PEOPLE),
        &format!(
            "send_log = \"{}\"\n[smtp]\npool_size = 4\ntimeout_secs = 5\n",
            server
                .url()
                .replace(&server.port().to_string(), &partition.port().to_string())
        ),
    );
    let other = campaign(&server, PEOPLE);
    // Its relay is slow: its queue of attempts made durable before the cut would take
    // seconds to drain, past its lease, were the lease not heeded.
    let its_smtp = SmtpServer::start_in_background(
        Behavior::accept_all().reply_delay(Duration::from_millis(200)),
    );
    let other_smtp = SmtpServer::start_in_background(
        Behavior::accept_all().reply_delay(Duration::from_millis(5)),
    );
    let lease = Duration::from_secs(3);
    let cut = start(&cut_off, &its_smtp, "3s", "a");
    let running = start(&other, &other_smtp, "3s", "b");
    its_smtp.wait_until(RUN_LIMIT, |j| j.accepted().count() >= 20);
    partition.cut();
    let cut_at = Instant::now();
    // Within half a lease of its last renewal it hands nothing more over (a message in hand
    // may still finish): from the cut, a lease is more than enough.
    std::thread::sleep(lease);
    let stopped_at = its_smtp.journal().accepted().count();
    let run = cut
        .wait(Duration::from_secs(30))
        .unwrap_or_else(|run| panic!("the cut-off sender did not stop: {}", run.all()));
    assert_eq!(run.code, 75, "{}", run.all());
    assert!(
        run.stderr.contains("run again") || run.stdout.contains("run again"),
        "{}",
        run.all()
    );
    assert_eq!(
        its_smtp.journal().accepted().count(),
        stopped_at,
        "nothing handed over past the lease's deadline"
    );
    eprintln!(
        "cut off after {stopped_at} accepted; exited 75 {:?} after the cut",
        cut_at.elapsed()
    );
    let run = finish(running);
    assert!([0, 75].contains(&run.code), "{}", run.all());
    // What the cut-off sender held waits for its lease, then is taken over.
    let mut finals = 0;
    while status(&other, &[])["sent"] != PEOPLE as u64 {
        assert!(finals < 10, "{}", status(&other, &[]));
        finals += 1;
        std::thread::sleep(Duration::from_millis(500));
        let run = finish(start(&other, &other_smtp, "3s", "b"));
        assert!([0, 75].contains(&run.code), "{}", run.all());
    }
    let audit = audit(&other, &server, &[its_smtp.journal(), other_smtp.journal()]);
    audit.assert_settled(&everyone(PEOPLE), &BTreeSet::new(), 0);
    eprintln!(
        "{} duplicate(s), each an in-doubt attempt",
        audit.duplicates()
    );
}
