//! The send log in PostgreSQL, against a real server the tests start ([`PgServer`]): what it
//! replays is what the file log replays from the same records; campaigns sharing a database
//! stay apart; the schema, the URL and the database's absence are each refused or retried as a
//! person running missive needs.

use std::time::{Duration, SystemTime};

use missive::address::RecipientKey;
use missive::error::{Classify, ErrorKind};
use missive::sendlog::{
    Event, FileLog, LogWriter, PgLog, PgTarget, Record, Replay, SendLog, SendLogError, timestamp,
};

use crate::support::postgres::PgServer;
use crate::support::tls::TestCa;

pub(crate) fn target(server: &PgServer) -> PgTarget {
    PgTarget::parse(&server.url(), |name| {
        (name == "PGPASSWORD").then(|| PgServer::PASSWORD.to_owned())
    })
    .unwrap()
}

/// Why opening campaign `c` at `target` failed (a replay is too long to print when it did not).
fn refused(target: &PgTarget) -> SendLogError {
    match PgLog::open(target, "c") {
        Ok(_) => panic!("campaign c opened at {target}, but should have been refused"),
        Err(error) => error,
    }
}

fn at(ago: u64) -> String {
    timestamp(SystemTime::now() - Duration::from_secs(ago))
}

pub(crate) fn record(event: Event, rcpt: &str, ago: u64) -> Record {
    Record {
        at: at(ago),
        ..Record::new(event, rcpt, &format!("<{rcpt}.1@missive>"))
    }
}

/// Every kind of record, in the orders a run writes them: sent, failed (two reasons), deferred
/// (due, and later), in doubt, withdrawn back to pending and back to deferred, a resend after
/// doubt, a second letter, the fallback relay, a time that does not parse, and a non-ASCII
/// address written in capitals.
fn story() -> Vec<Record> {
    let attempt = |letter: &str| Event::attempt(letter);
    let sent = |via: Option<&str>| Event::Sent {
        reply: "250 2.0.0 queued as 1F2".into(),
        via: via.map(str::to_owned),
    };
    let failed = |reply: &str| Event::Failed {
        reply: reply.into(),
    };
    let deferred = |retry_at: String| Event::Deferred {
        reply: "451 4.7.1 greylisted".into(),
        retry_at: Some(retry_at),
    };
    let later = timestamp(SystemTime::now() + Duration::from_secs(3600));
    let mut records = vec![
        record(attempt("L1"), "ann@example.com", 7200),
        record(sent(None), "ann@example.com", 7199),
        record(attempt("L1"), "bob@example.com", 7000),
        record(failed("550 5.1.1 no such user"), "bob@example.com", 6999),
        record(attempt("L1"), "cy@example.com", 6000),
        record(failed("gave up after 8 attempts"), "cy@example.com", 5999),
        record(attempt("L1"), "dee@example.com", 5000),
        record(deferred(at(100)), "dee@example.com", 4999),
        record(attempt("L1"), "eve@example.com", 4000),
        record(deferred(later.clone()), "eve@example.com", 3999),
        record(attempt("L1"), "flo@example.com", 3800),
        record(deferred(at(3500)), "flo@example.com", 3799),
        record(attempt("L1"), "flo@example.com", 3000),
        record(Event::Withdrawn, "flo@example.com", 3000),
        record(attempt("L2"), "fay@example.com", 2000),
        record(attempt("L2"), "gus@example.com", 1000),
        record(Event::Withdrawn, "gus@example.com", 1000),
        record(attempt("L2"), "hal@example.com", 900),
        record(attempt("L2"), "hal@example.com", 800),
        record(
            sent(Some("smtp://fallback.example.org")),
            "hal@example.com",
            799,
        ),
        record(attempt("L2"), "ÉMILE@Example.com", 90_000),
        record(
            failed("550 5.1.1 no such user"),
            "émile@example.com",
            89_999,
        ),
    ];
    records.push(Record {
        at: "not a time".into(),
        ..Record::new(attempt("L2"), "ivy@example.com", "<ivy@missive>")
    });
    for i in 0..60 {
        let rcpt = format!("p{i}@example.com");
        records.push(record(attempt("L2"), &rcpt, 60));
        if i % 3 > 0 {
            records.push(record(sent(None), &rcpt, 59));
        }
    }
    records
}

/// Writes `records` through the group-commit writer, as the engine does: all submitted at once,
/// each waited for.
fn write_through_log_writer(log: Box<dyn SendLog>, records: &[Record]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (writer, thread) = LogWriter::spawn(log);
    runtime.block_on(async {
        let mut waiting = Vec::new();
        for record in records {
            waiting.push(writer.submit(record.clone()).await.unwrap());
        }
        for durable in waiting {
            durable.wait().await.unwrap();
        }
    });
    drop(writer);
    thread.join().unwrap();
}

/// Everything a replay tells, for `rcpts`, in a form to compare.
fn seen(replay: &Replay, rcpts: &[String]) -> String {
    let entries: Vec<String> = rcpts
        .iter()
        .map(|rcpt| format!("{rcpt}: {:?}", replay.get(&RecipientKey::of(rcpt))))
        .collect();
    format!(
        "campaign {:?}, {} people\n{}\nhistory {:?}\nfailed {:?}\nletters {:?}\nnext retry \
         {:?}\nvia fallback {}",
        replay.campaign(),
        replay.len(),
        entries.join("\n"),
        replay.history(),
        replay.failed_reasons(),
        replay.letters(),
        replay.next_retry(),
        replay.sent_via_fallback()
    )
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg::` (bash .ci/run does)"
)]
fn records_replay_from_the_database_as_from_a_file_log() {
    let server = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sendlog.jsonl");
    let records = story();
    let mut rcpts: Vec<String> = records.iter().map(|r| r.rcpt.clone()).collect();
    rcpts.sort();
    rcpts.dedup();
    rcpts.push("nobody@example.com".into());

    // Reading makes nothing: a database without missive's tables is an empty log.
    assert_eq!(PgLog::read(&target(&server), "c").unwrap().0.len(), 0);
    assert_eq!(server.sql("SELECT to_regclass('missive.records')"), "");
    let (log, replay) = PgLog::open(&target(&server), "c").unwrap();
    assert_eq!(replay.len(), 0);
    assert_eq!(replay.campaign(), Some("c"));
    write_through_log_writer(Box::new(log), &records);
    let (log, _) = FileLog::open(&path, "c").unwrap();
    write_through_log_writer(Box::new(log), &records);

    let (_db, from_db) = PgLog::open(&target(&server), "c").unwrap();
    let (_file, from_file) = FileLog::open(&path, "c").unwrap();
    let from_file = seen(&from_file, &rcpts);
    assert_eq!(seen(&from_db, &rcpts), from_file);
    // `status`'s read, beside the open log, as FileLog::read.
    let (read, _) = PgLog::read(&target(&server), "c").unwrap();
    assert_eq!(seen(&read, &rcpts), from_file);
    // The comparison compares something: each kind of outcome is there.
    for expected in [
        "Sent",
        "Failed",
        "Deferred",
        "InDoubt",
        "L2",
        "550 5.1.1",
        "None",
    ] {
        assert!(from_file.contains(expected), "{expected}: {from_file}");
    }
    assert_eq!(
        server.sql("SELECT count(*) FROM missive.records"),
        records.len().to_string()
    );
    // Shared: a second sender opens it too, and both hold a live lease.
    let (_second, again) = PgLog::open(&target(&server), "c").unwrap();
    assert_eq!(seen(&again, &rcpts), from_file);
    let (_, active) = PgLog::read(&target(&server), "c").unwrap();
    assert_eq!(active, 2);
    drop((_db, _second));
    let (_, active) = PgLog::read(&target(&server), "c").unwrap();
    assert_eq!(active, 0, "a sender leaving ends its lease");

    // A database of version 1 (records only) is migrated: each person's state is folded from
    // the records, as the file log folds them.
    server.sql(
        "DROP TABLE missive.people, missive.senders, missive.permits; \
         UPDATE missive.schema_version SET version = 1",
    );
    // `status` only reads: it says what to do, rather than fail on a table not made yet.
    let refused = PgLog::read(&target(&server), "c").map(|_| ()).unwrap_err();
    let said = refused.to_string();
    assert!(
        said.contains("version 1") && said.contains("a `missive send` of this version"),
        "{said}"
    );
    let (_db, migrated) = PgLog::open(&target(&server), "c").unwrap();
    assert_eq!(seen(&migrated, &rcpts), from_file);
    assert_eq!(
        server.sql("SELECT version FROM missive.schema_version"),
        "5"
    );
    // Version 4 writes lighter: no foreign key checked for each record and person written.
    assert_eq!(
        server.sql(
            "SELECT string_agg(conrelid::regclass::text, ' ' ORDER BY conrelid::regclass::text) FROM pg_constraint \
             WHERE contype = 'f' AND connamespace = 'missive'::regnamespace"
        ),
        "permits senders"
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg::` (bash .ci/run does)"
)]
fn campaigns_sharing_a_database_stay_apart() {
    let server = PgServer::start();
    let sent = |rcpt: &str| {
        let event = Event::Sent {
            reply: "250 ok".into(),
            via: None,
        };
        Record::new(event, rcpt, "<i@x>")
    };
    {
        let (mut a, _) = PgLog::open(&target(&server), "a").unwrap();
        let (mut b, _) = PgLog::open(&target(&server), "b").unwrap();
        a.append(&[sent("one@example.com")]).unwrap();
        b.append(&[sent("two@example.com"), sent("three@example.com")])
            .unwrap();
        a.append(&[sent("four@example.com")]).unwrap();
        assert_ne!(a.campaign_uid(), b.campaign_uid());
    }
    let (a, replay_a) = PgLog::open(&target(&server), "a").unwrap();
    let (_b, replay_b) = PgLog::open(&target(&server), "b").unwrap();
    let has = |replay: &Replay, rcpt: &str| replay.get(&RecipientKey::of(rcpt)).is_some();
    assert_eq!((replay_a.len(), replay_b.len()), (2, 2));
    assert!(has(&replay_a, "one@example.com") && has(&replay_a, "four@example.com"));
    assert!(has(&replay_b, "two@example.com") && !has(&replay_b, "one@example.com"));
    let uid = a.campaign_uid().to_owned();
    drop(a);
    let (a, _) = PgLog::open(&target(&server), "a").unwrap();
    assert_eq!(a.campaign_uid(), uid, "a campaign keeps its row");
    assert_eq!(
        server.sql("SELECT string_agg(name, ',' ORDER BY name) FROM missive.campaigns"),
        "a,b"
    );
    assert!(PgLog::read(&target(&server), "z").unwrap().0.is_empty());
    assert_eq!(PgLog::read(&target(&server), "b").unwrap().0.len(), 2);
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg::` (bash .ci/run does)"
)]
fn a_newer_schema_is_refused_naming_both_versions() {
    let server = PgServer::start();
    drop(PgLog::open(&target(&server), "c").unwrap());
    assert_eq!(
        server.sql("SELECT version FROM missive.schema_version"),
        "5"
    );
    server.sql("UPDATE missive.schema_version SET version = 7, made_by = '3.1.4'");
    let err = refused(&target(&server));
    assert!(matches!(err, SendLogError::NewerSchema { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let text = err.to_string();
    for part in [
        "version 7",
        "missive 3.1.4",
        "up to 5",
        env!("CARGO_PKG_VERSION"),
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    let err = PgLog::read(&target(&server), "c").unwrap_err();
    assert!(matches!(err, SendLogError::NewerSchema { .. }), "{err}");
    assert_eq!(
        server.sql("SELECT version FROM missive.schema_version"),
        "7"
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg::` (bash .ci/run does)"
)]
fn the_password_comes_from_pgpassword_only_and_a_wrong_one_is_refused() {
    let server = PgServer::start();
    let with_password = server
        .url()
        .replace("missive@", &format!("missive:{}@", PgServer::PASSWORD));
    let err = PgTarget::parse(&with_password, |_| None).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(PgServer::PASSWORD), "{text}");
    assert!(text.contains("PGPASSWORD"), "{text}");
    assert_eq!(err.kind(), ErrorKind::Invalid);

    for password in [None, Some("wrong")] {
        let target = PgTarget::parse(&server.url(), |name| {
            (name == "PGPASSWORD")
                .then(|| password.map(str::to_owned))
                .flatten()
        })
        .unwrap();
        let err = refused(&target);
        assert!(matches!(err, SendLogError::DatabaseRefused { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
        assert!(err.to_string().contains("PGPASSWORD"), "{err}");
    }
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg::` (bash .ci/run does)"
)]
fn a_database_that_goes_away_is_try_again_and_a_new_open_resumes() {
    let mut server = PgServer::start();
    let attempt = |rcpt: &str| Record::new(Event::attempt("L"), rcpt, "<i@x>");
    let (mut log, _) = PgLog::open(&target(&server), "c").unwrap();
    log.append(&[attempt("a@example.com")]).unwrap();

    server.stop();
    let err = log.append(&[attempt("b@example.com")]).unwrap_err();
    assert!(
        matches!(err, SendLogError::DatabaseUnreachable { .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::TryAgain);
    let err = refused(&target(&server));
    assert_eq!(err.kind(), ErrorKind::TryAgain, "{err}");

    server.start_again();
    // The old connection is gone for good: its appends keep failing, never half-succeed.
    assert_eq!(
        log.append(&[attempt("c@example.com")]).unwrap_err().kind(),
        ErrorKind::TryAgain
    );
    drop(log);
    let (mut log, replay) = PgLog::open(&target(&server), "c").unwrap();
    assert_eq!(replay.len(), 1, "only what was committed");
    log.append(&[attempt("d@example.com")]).unwrap();

    // An administrator (or a failover) ends the connection: the same, and the campaign is
    // free for the next open.
    // (Two connections: the log's, and its lease's.)
    assert_eq!(server.terminate_missive_backends(), 2);
    let err = log.append(&[attempt("e@example.com")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TryAgain, "{err}");
    let (_log, replay) = PgLog::open(&target(&server), "c").unwrap();
    let people: Vec<bool> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|p| {
            replay
                .get(&RecipientKey::of(&format!("{p}@example.com")))
                .is_some()
        })
        .collect();
    assert_eq!(people, [true, false, false, true, false]);
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg::` (bash .ci/run does)"
)]
fn tls_to_the_database_is_verified_against_the_authority_given() {
    let server = PgServer::start();
    let certs = tempfile::tempdir().unwrap();
    let authority = TestCa::generate(certs.path(), "database");
    let (cert, key) = authority.server_files();
    server.enable_tls(cert, key);
    let password = |name: &str| (name == "PGPASSWORD").then(|| PgServer::PASSWORD.to_owned());
    let url = format!("{}?sslmode=verify-full", server.url());

    // Signed by an authority of its own: not one of the web's, refused.
    let err = refused(&PgTarget::parse(&url, password).unwrap());
    assert!(matches!(err, SendLogError::DatabaseRefused { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("certificate"), "{err}");

    // Trusted once named, and the connection is encrypted.
    let trusted = format!("{url}&sslrootcert={}", authority.ca.display());
    let target = PgTarget::parse(&trusted, password).unwrap();
    let (mut log, _) = PgLog::open(&target, "c").unwrap();
    log.append(&[Record::new(Event::attempt("L"), "a@example.com", "<i@x>")])
        .unwrap();
    assert_eq!(
        server.sql(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name LIKE 'missive %'"
        ),
        "t"
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg::` (bash .ci/run does)"
)]
fn a_missive_older_than_shared_campaigns_is_waited_for() {
    let server = PgServer::start();
    drop(PgLog::open(&target(&server), "c").unwrap());
    // A missive of schema 1 sending campaign c holds its advisory lock ("misv", the row id)
    // alone, on its connection: it claims nobody, so no sender of today may send beside it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = format!(
        "host=127.0.0.1 port={} user={} password={} dbname=postgres",
        server.port(),
        PgServer::USER,
        PgServer::PASSWORD
    );
    let (old, connection) = runtime
        .block_on(tokio_postgres::connect(&config, tokio_postgres::NoTls))
        .unwrap();
    runtime.spawn(connection);
    let sql = "SELECT pg_advisory_lock(1835627382, \
               (SELECT id FROM missive.campaigns WHERE name = 'c'))";
    runtime.block_on(old.execute(sql, &[])).unwrap();
    let err = refused(&target(&server));
    assert!(matches!(err, SendLogError::Locked { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::TryAgain);
    assert!(err.to_string().contains("older"), "{err}");
    // Once it ends, senders of today share the campaign (and the old one would wait).
    drop(old);
    drop(runtime);
    std::thread::sleep(Duration::from_millis(200));
    let (_one, _) = PgLog::open(&target(&server), "c").unwrap();
    let (_two, _) = PgLog::open(&target(&server), "c").unwrap();
    let taken = server.sql(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' \
         AND granted",
    );
    assert_eq!(taken, "2");
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg::` (bash .ci/run does)"
)]
fn a_batch_the_database_undoes_for_a_deadlock_is_written_again() {
    let server = PgServer::start();
    // missive's connections look for a deadlock after 5 s of waiting, the other session only
    // after a minute: of the two, the database undoes missive's batch.
    server.sql("ALTER DATABASE postgres SET deadlock_timeout = '5s'");
    let (mut log, _) = PgLog::open(&target(&server), "c").unwrap();
    let attempt = |rcpt| record(Event::attempt("L1"), rcpt, 2);
    let refused = log
        .append(&[attempt("a@example.com"), attempt("b@example.com")])
        .unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    // Another transaction (a sender's, as the database sees it) holds b's row, then, while
    // missive's batch holds a's and waits for b's, asks for a's: each waits for the other.
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
    let sent = |rcpt| {
        let event = Event::Sent {
            reply: "250 ok".into(),
            via: None,
        };
        record(event, rcpt, 1)
    };
    let started = std::time::Instant::now();
    let refused = log
        .append(&[sent("a@example.com"), sent("b@example.com")])
        .expect("a batch undone for a deadlock is written again");
    assert!(refused.is_empty(), "{refused:?}");
    drop(crossing);
    // The batch waited for the other transaction, was undone, and was written once more.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        server.sql("SELECT string_agg(rcpt || ' ' || status || ' ' || coalesce(reply, '-'), ', ' ORDER BY rcpt) FROM missive.people"),
        "a@example.com sent 250 ok, b@example.com sent 250 ok"
    );
    assert_eq!(
        server.sql("SELECT count(*) FROM missive.records WHERE event = 'sent'"),
        "2",
        "each outcome written once"
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg::` (bash .ci/run does)"
)]
fn a_batch_reads_only_its_own_people_however_many_the_campaign_has() {
    // The session plans its write while the tables are empty, as a new campaign's first
    // sender does; a plan that looked through the campaign's people for every batch would
    // make a send of n people cost n² (it did: the withdrawn attempts were joined so).
    const PEOPLE: usize = 3000;
    const CHUNK: usize = 50;
    let server = PgServer::start();
    let (mut log, _) = PgLog::open(&target(&server), "c").unwrap();
    let rcpts: Vec<String> = (0..PEOPLE).map(|i| format!("p{i}@example.com")).collect();
    for chunk in rcpts.chunks(CHUNK) {
        let attempts: Vec<Record> = chunk
            .iter()
            .map(|rcpt| record(Event::attempt("L1"), rcpt, 2))
            .collect();
        assert!(log.append(&attempts).unwrap().is_empty());
        let outcomes: Vec<Record> = chunk
            .iter()
            .enumerate()
            .map(|(i, rcpt)| {
                let event = if i % 10 == 0 {
                    Event::Withdrawn
                } else {
                    Event::Sent {
                        reply: "250 ok".into(),
                        via: None,
                    }
                };
                record(event, rcpt, 1)
            })
            .collect();
        assert!(log.append(&outcomes).unwrap().is_empty());
    }
    // A connection's statistics reach the server's views when it ends.
    drop(log);
    let read = || -> u64 {
        server
            .sql(
                "SELECT idx_tup_read FROM pg_stat_user_indexes \
                 WHERE indexrelname = 'people_pkey'",
            )
            .parse()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut entries = read();
    while entries == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        entries = read();
    }
    assert!(entries > 0, "the statistics count the index's use");
    assert!(
        entries < 4 * PEOPLE as u64,
        "{entries} index entries read to write {PEOPLE} people in {} batches",
        2 * PEOPLE / CHUNK
    );
    assert_eq!(
        server.sql("SELECT count(*) FILTER (WHERE status = 'sent') || ' ' || count(*) FILTER (WHERE status = 'withdrawn') FROM missive.people"),
        format!("{} {}", PEOPLE - PEOPLE / 10, PEOPLE / 10)
    );
}
