//! A sender's lease on the people it claimed in a campaign shared through PostgreSQL: ended
//! when the sender ends, and never brought back by a renewal that lands late (the others'
//! takeover and `log export` would wait a lease for a sender that is gone); and a migration
//! does not queue everyone behind a sender cut off in the middle of a transaction; and a sender
//! that met people others held tells cron "done" (0) once the others have seen them through,
//! "run again" (75) while they have not. The real binary, a real database the tests start, the
//! test SMTP server.

use std::time::{Duration, Instant};

use missive::sendlog::{PgLog, SendLogError};

use crate::pg_multi::finish;
use crate::pg_send::{ENV, campaign, status};
use crate::support::harness::{Fixture, RUN_LIMIT, people};
use crate::support::postgres::PgServer;
use crate::support::smtp_server::{Behavior, SmtpServer};

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_lease::` (bash .ci/run does)"
)]
fn a_renewal_landing_after_the_sender_ended_its_lease_does_not_revive_it() {
    let server = PgServer::start();
    let fixture = campaign(&server, 3000);
    let smtp = SmtpServer::start_in_background(
        Behavior::accept_all().reply_delay(Duration::from_millis(5)),
    );
    // A 4 s lease: renewed every second, given up 2 s after the last renewal that answered.
    let env = [ENV[0], ("MISSIVE_LEASE", "4s")];
    let sender = fixture.start_send_with(&smtp.url(), &[], &env);
    smtp.wait_until(RUN_LIMIT, |j| j.accepted().count() >= 20);
    // From now on the database takes 2.5 s over each renewal, before it touches the row (a
    // slow moment, a descheduled backend): the sender gives up on its lease and ends it, and
    // the renewal it sent last lands after that.
    server.sql(
        "CREATE TABLE public.slow (pid integer);
         CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF EXISTS (SELECT 1 FROM public.slow WHERE pid = pg_backend_pid()) THEN
                 PERFORM pg_sleep(2.5);
             END IF;
             RETURN NULL;
         END $$;
         CREATE TRIGGER slow BEFORE UPDATE ON missive.senders
             FOR EACH STATEMENT EXECUTE FUNCTION public.slow();",
    );
    let renewer = server.sql(
        "WITH slowed AS (INSERT INTO public.slow SELECT pid FROM pg_stat_activity
         WHERE query LIKE 'UPDATE missive.senders SET lease_until = now() + make_interval%'
         RETURNING pid) SELECT count(*) FROM slowed",
    );
    assert_eq!(renewer, "1", "one connection renews the lease");
    let run = sender
        .wait(Duration::from_secs(10))
        .unwrap_or_else(|run| panic!("the sender did not give up its lease: {}", run.all()));
    assert_eq!(run.code, 75, "{}", run.all());
    let live = "SELECT count(*) FROM missive.senders WHERE lease_until > now()";
    assert_eq!(server.sql(live), "0", "the lease was ended at the close");
    // The renewal it sent before closing lands within 2.5 s: a lease ended stays ended (else
    // the others' takeover and `log export` wait a lease for a sender that is gone).
    let ended = Instant::now();
    while ended.elapsed() < Duration::from_secs(3) {
        assert_eq!(server.sql(live), "0", "a late renewal revived the lease");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(&fixture, &[])["senders_active"], 0);
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_lease::` (bash .ci/run does)"
)]
fn a_killed_import_leaves_no_live_lease_behind() {
    let server = PgServer::start();
    let smtp = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(20), "[smtp]\npool_size = 2\n");
    let run = fixture.send(&smtp.url(), &["--max-messages", "5"]);
    assert_eq!(run.code, 75, "{}", run.all());
    // The tables, made by a sender of another campaign that has come and gone; then a database
    // slow to write records, so that the import can be killed while it writes.
    let target = missive::sendlog::PgTarget::parse(&server.url(), |name| {
        (name == "PGPASSWORD").then(|| PgServer::PASSWORD.to_owned())
    })
    .unwrap();
    drop(missive::sendlog::PgLog::open(&target, "another").unwrap());
    server.sql(
        "CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$;
         CREATE TRIGGER slow BEFORE INSERT ON missive.records
             FOR EACH STATEMENT EXECUTE FUNCTION public.slow();",
    );
    let campaign = fixture.campaign();
    let mut import = std::process::Command::new(env!("CARGO_BIN_EXE_missive"))
        .args([
            "log",
            "import",
            campaign.to_str().unwrap(),
            "--to",
            &server.url(),
        ])
        .env("PGPASSWORD", PgServer::PASSWORD)
        .env_remove("MISSIVE_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let writing = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'";
    let start = Instant::now();
    while server.sql(writing) != "1" {
        assert!(start.elapsed() < RUN_LIMIT, "the import never wrote");
        std::thread::sleep(Duration::from_millis(20));
    }
    import.kill().unwrap();
    import.wait().unwrap();
    // Nothing of it was committed, and nobody waits a lease for it: not the senders taking
    // over in-doubt attempts, not `status`, not `log export`.
    let live = "SELECT count(*) FROM missive.senders WHERE lease_until > now()";
    assert_eq!(server.sql(live), "0", "the killed import's lease is live");
    assert_eq!(server.sql("SELECT count(*) FROM missive.records"), "0");
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_lease::` (bash .ci/run does)"
)]
fn a_migration_behind_a_transaction_left_open_gives_up_rather_than_hold_every_sender() {
    let server = PgServer::start();
    let target = crate::pg::target(&server);
    drop(PgLog::open(&target, "c").unwrap());
    let version: i32 = server
        .sql("SELECT version FROM missive.schema_version")
        .parse()
        .unwrap();
    // The last migration left to do (each can be run again).
    server.sql(&format!(
        "UPDATE missive.schema_version SET version = {}",
        version - 1
    ));
    // A sender cut off in the middle of a transaction holds its tables until the database
    // ends it, half a lease later.
    let stuck = server.session(
        "BEGIN; LOCK TABLE missive.records, missive.people, missive.senders, missive.permits \
         IN ROW EXCLUSIVE MODE; SELECT 1 AS stuck;",
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%AS stuck%' \
         AND pid <> pg_backend_pid()",
    );
    let started = Instant::now();
    let refused = PgLog::open(&target, "c").map(|_| ()).unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(refused, SendLogError::DatabaseCrossed { .. })
            && refused.to_string().contains("lock timeout")
            && refused.to_string().contains("run again"),
        "{refused}"
    );
    // The migration waits a few seconds, not until the stuck transaction ends.
    assert!(
        (Duration::from_secs(4)..Duration::from_secs(15)).contains(&waited),
        "gave up after {waited:?}"
    );
    assert_eq!(
        server.sql("SELECT version FROM missive.schema_version"),
        (version - 1).to_string(),
        "nothing migrated"
    );
    drop(stuck);
    drop(PgLog::open(&target, "c").unwrap());
    assert_eq!(
        server.sql("SELECT version FROM missive.schema_version"),
        version.to_string()
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_lease::` (bash .ci/run does)"
)]
fn a_sender_that_met_others_people_exits_0_once_they_are_through_and_75_while_they_are_not() {
    const PEOPLE: usize = 12;
    let server = PgServer::start();
    let fixture = campaign(&server, PEOPLE);
    let start = |smtp: &SmtpServer, more: &[&str]| fixture.start_send_with(&smtp.url(), more, &ENV);
    // The first sender claims half the list and holds it for two slow rounds (pool 4).
    let slow =
        SmtpServer::start_in_background(Behavior::accept_all().reply_delay(Duration::from_secs(3)));
    let first = start(&slow, &["--max-messages", "6"]);
    let held = || -> u64 {
        let sql = "SELECT count(*) FROM missive.people WHERE status = 'attempt'";
        server.sql(sql).parse().unwrap()
    };
    // (Its tables made once a message is on its way.)
    slow.wait_until(RUN_LIMIT, |j| !j.rcpt_commands.is_empty());
    let waiting = Instant::now();
    while held() < 6 {
        assert!(
            waiting.elapsed() < RUN_LIMIT,
            "the first sender claimed nobody"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The second takes the other half, slower still: it ends after the first.
    let slower =
        SmtpServer::start_in_background(Behavior::accept_all().reply_delay(Duration::from_secs(4)));
    let second = start(&slower, &[]);
    let waiting = Instant::now();
    while held() < PEOPLE as u64 {
        assert!(
            waiting.elapsed() < RUN_LIMIT,
            "the second sender claimed nobody"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A third finds everyone held: the others are at work, so "run again".
    let quick = SmtpServer::start_in_background(Behavior::accept_all());
    let third = finish(start(&quick, &[]));
    assert_eq!(third.code, 75, "{}", third.all());
    // (How many: all of them unless a slow machine let the first see some through already.)
    for said in [
        "person(s) held by another sender of the campaign, and ",
        " of the campaign's people not yet sent or failed: run again later",
    ] {
        assert!(third.stdout.contains(said), "{}", third.all());
    }
    assert_eq!(
        quick.journal().rcpt_commands.len(),
        0,
        "held, yet given to a server"
    );

    let first = finish(first);
    assert_eq!(first.code, 75, "its budget: {}", first.all());
    assert!(
        first.stdout.contains("--max-messages reached"),
        "{}",
        first.all()
    );
    // The second met the first's people; by its end the first has seen them through.
    let second = finish(second);
    assert!(
        second.stdout.contains("6 taken by another sender"),
        "{}",
        second.all()
    );
    assert_eq!(second.code, 0, "{}", second.all());
    assert!(
        second.stdout.contains(
            "6 person(s) were held by another sender of the campaign, and every one of the \
             campaign's people is now sent or failed: the campaign is done"
        ),
        "{}",
        second.all()
    );
    let (a, b) = (slow.journal(), slower.journal());
    assert_eq!((a.accepted().count(), b.accepted().count()), (6, 6));
    let counts = status(&fixture, &[]);
    assert_eq!(counts["sent"], PEOPLE as u64, "{counts}");
}
