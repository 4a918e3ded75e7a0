//! Senders' batches meeting over the same people in PostgreSQL: two senders whose batches name
//! each other's people (one claims people the other is writing outcomes for, as senders walking
//! one list do) wait for each other in turn, never in a circle that the database must break by
//! undoing one; a batch it undoes anyway is written again, once; a withdrawal lets go only of
//! a person its sender holds.

use std::time::{Duration, Instant, SystemTime};

use missive::sendlog::{Event, PgLog, Record, SendLog, timestamp};

use crate::pg::{record, target};
use crate::support::postgres::PgServer;

fn attempt(rcpt: &str) -> Record {
    record(Event::attempt("L1"), rcpt, 2)
}

fn sent(rcpt: &str) -> Record {
    let event = Event::Sent {
        reply: "250 ok".into(),
        via: None,
    };
    record(event, rcpt, 1)
}

/// Waits until `n` of missive's connections wait for a row another transaction holds.
fn waiting(server: &PgServer, n: usize) {
    let sql = format!(
        "SELECT count(*) = {n} FROM pg_stat_activity \
         WHERE application_name LIKE 'missive %' AND wait_event_type = 'Lock'"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.sql(&sql) != "t" {
        assert!(Instant::now() < deadline, "{n} batches never waited");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_cross::` (bash .ci/run does)"
)]
fn a_claim_over_another_senders_people_and_its_outcomes_do_not_deadlock() {
    let server = PgServer::start();
    // A deadlock would be found after 5 s of waiting: long beside the waits made here.
    server.sql("ALTER DATABASE postgres SET deadlock_timeout = '5s'");
    let (mut first, _) = PgLog::open(&target(&server), "c").unwrap();
    let (mut second, _) = PgLog::open(&target(&server), "c").unwrap();
    // The first sender holds c; the second holds a, and has sent b.
    assert!(
        first
            .append(&[attempt("c@example.com")])
            .unwrap()
            .is_empty()
    );
    let held = [attempt("a@example.com"), attempt("b@example.com")];
    assert!(second.append(&held).unwrap().is_empty());
    assert!(second.append(&[sent("b@example.com")]).unwrap().is_empty());
    // Another transaction holds b's row for a moment, so that the first sender's batch, which
    // claims a and b (refused: held, sent) and sends c, stops at b while the second's, which
    // claims c (refused: held) and sends a, starts.
    let started = Instant::now();
    let holding = server.session(
        "BEGIN; SELECT 1 FROM missive.people WHERE rcpt = 'b@example.com' FOR UPDATE; \
         SELECT pg_sleep(3) AS holding; COMMIT;",
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%AS holding%' \
         AND state = 'active' AND pid <> pg_backend_pid()",
    );
    let (refused_first, refused_second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            first.append(&[
                attempt("a@example.com"),
                attempt("b@example.com"),
                sent("c@example.com"),
            ])
        });
        waiting(&server, 1);
        let second =
            scope.spawn(|| second.append(&[attempt("c@example.com"), sent("a@example.com")]));
        waiting(&server, 2);
        (first.join().unwrap(), second.join().unwrap())
    });
    let elapsed = started.elapsed();
    drop(holding);
    assert_eq!(refused_first.unwrap(), [0, 1], "a held, b sent");
    assert_eq!(refused_second.unwrap(), [0], "c held or sent");
    drop((first, second));
    // A backend's statistics reach the server's views before it leaves them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .sql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'missive %'")
        != "0"
    {
        assert!(Instant::now() < deadline, "missive's connections stay");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        server.sql("SELECT deadlocks FROM pg_stat_database WHERE datname = 'postgres'"),
        "0",
        "the database undid a batch for a deadlock"
    );
    assert!(elapsed < Duration::from_millis(4500), "{elapsed:?}");
    assert_eq!(
        server.sql(
            "SELECT string_agg(rcpt || ' ' || status, ', ' ORDER BY rcpt) FROM missive.people"
        ),
        "a@example.com sent, b@example.com sent, c@example.com sent"
    );
    assert_eq!(
        server.sql("SELECT count(*) FROM missive.records WHERE event = 'sent'"),
        "3",
        "each outcome written once"
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_cross::` (bash .ci/run does)"
)]
fn a_batch_of_two_statements_undone_for_a_deadlock_is_written_again_once() {
    let server = PgServer::start();
    // missive's connections look for a deadlock after 5 s of waiting, the other session only
    // after a minute: of the two, the database undoes missive's transaction.
    server.sql("ALTER DATABASE postgres SET deadlock_timeout = '5s'");
    let (mut log, _) = PgLog::open(&target(&server), "c").unwrap();
    assert!(log.append(&[attempt("a@example.com")]).unwrap().is_empty());
    let withdrawn = |rcpt| record(Event::Withdrawn, rcpt, 1);
    assert!(
        log.append(&[withdrawn("a@example.com")])
            .unwrap()
            .is_empty()
    );
    assert!(log.append(&[attempt("b@example.com")]).unwrap().is_empty());
    // Another transaction holds b's row, then asks for a's, which the batch's first statement
    // (the attempt to a) has taken while its second (a withdrawn, b sent) waits for b's.
    let lock = |rcpt| format!("SELECT 1 FROM missive.people WHERE rcpt = '{rcpt}' FOR UPDATE;");
    let crossing = server.session(
        &format!(
            "BEGIN; SET LOCAL deadlock_timeout = '60s'; {} SELECT pg_sleep(2) AS crossing; {} \
             UPDATE missive.people SET reply = 'crossed' WHERE rcpt = 'a@example.com'; COMMIT;",
            lock("b@example.com"),
            lock("a@example.com"),
        ),
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%AS crossing%' \
         AND state = 'active' AND pid <> pg_backend_pid()",
    );
    let started = Instant::now();
    let refused = log
        .append(&[
            attempt("a@example.com"),
            withdrawn("a@example.com"),
            sent("b@example.com"),
        ])
        .expect("a batch undone for a deadlock is written again");
    assert!(refused.is_empty(), "{refused:?}");
    drop(crossing);
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "the batch was undone: {:?}",
        started.elapsed()
    );
    // The first statement's writes were undone with the second's: each record once.
    assert_eq!(
        server
            .sql("SELECT string_agg(rcpt || ' ' || event, ', ' ORDER BY seq) FROM missive.records"),
        "a@example.com attempt, a@example.com withdrawn, b@example.com attempt, \
         a@example.com attempt, a@example.com withdrawn, b@example.com sent"
    );
    assert_eq!(
        server.sql(
            "SELECT string_agg(rcpt || ' ' || status || ' ' || attempts, ', ' ORDER BY rcpt) \
             FROM missive.people"
        ),
        "a@example.com withdrawn 0, b@example.com sent 1"
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_cross::` (bash .ci/run does)"
)]
fn a_withdrawal_lets_go_only_of_a_person_its_sender_holds() {
    let server = PgServer::start();
    let (mut first, _) = PgLog::open(&target(&server), "c").unwrap();
    let (mut second, _) = PgLog::open(&target(&server), "c").unwrap();
    let withdrawn = |rcpt| record(Event::Withdrawn, rcpt, 1);
    let deferred = |rcpt| {
        let event = Event::Deferred {
            reply: "451 later".into(),
            retry_at: Some(timestamp(SystemTime::now() + Duration::from_secs(3600))),
        };
        record(event, rcpt, 1)
    };
    let held = [
        attempt("held@example.com"),
        attempt("deferred@example.com"),
        attempt("own@example.com"),
        attempt("sent@example.com"),
    ];
    assert!(first.append(&held).unwrap().is_empty());
    let outcomes = [deferred("deferred@example.com"), sent("sent@example.com")];
    assert!(first.append(&outcomes).unwrap().is_empty());
    // The second sender withdraws what it does not hold; the first, all but the held one.
    let others = [
        withdrawn("held@example.com"),
        withdrawn("deferred@example.com"),
        withdrawn("nobody@example.com"),
    ];
    assert!(second.append(&others).unwrap().is_empty());
    let own = [
        withdrawn("deferred@example.com"),
        withdrawn("own@example.com"),
        withdrawn("sent@example.com"),
    ];
    assert!(first.append(&own).unwrap().is_empty());
    assert_eq!(
        server.sql(
            "SELECT string_agg(rcpt || ' ' || status || ' ' || attempts || ' ' \
             || (owner IS NOT NULL), ', ' ORDER BY rcpt) FROM missive.people"
        ),
        "deferred@example.com deferred 1 true, held@example.com attempt 1 true, \
         own@example.com withdrawn 0 false, sent@example.com sent 1 true"
    );
    assert_eq!(
        server.sql(
            "SELECT string_agg(rcpt, ', ' ORDER BY seq) FROM missive.records \
             WHERE event = 'withdrawn'"
        ),
        "own@example.com",
        "a withdrawn record only where it withdrew something"
    );
}
