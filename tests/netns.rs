//! A sender on the far side of a real network boundary: `missive send` runs in a network
//! namespace of its own ([`Netns`]), its relay on the namespace's own loopback and its send log
//! in PostgreSQL across a veth pair (TLS verified, as any database off the machine must be).
//! Pulling that cable drops packets without a reset, which is how a partition looks from
//! either side: the sender must notice by itself, stop within its lease, and leave nobody stuck
//! (the case that leaves Postal's messages locked by a worker that lost its database) or mailed
//! twice; a sender on this side takes its people over once the lease is gone.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use missive::sendlog::STALL;

use crate::pg_send::{ENV, everyone, records, status};
use crate::support::audit::Audit;
use crate::support::harness::{Fixture, RUN_LIMIT, people};
use crate::support::netns::Netns;
use crate::support::postgres::PgServer;
use crate::support::smtp_server::{Behavior, SmtpServer};
use crate::support::tls::TestCa;

const POOL_SIZE: usize = 4;
const REPLY_DELAY: Duration = Duration::from_millis(20);

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server and root: left to CI; run `cargo test --features db-tests --test tests netns::` (bash .ci/run does)"
)]
fn a_sender_cut_off_from_its_database_mid_run_stops_and_a_rerun_mails_everyone_once() {
    const PEOPLE: usize = 400;
    let ns = Netns::new(0);
    let mut server = PgServer::start_listening_also(&[ns.host_addr]);
    let certs = tempfile::tempdir().unwrap();
    let authority = TestCa::generate_for(certs.path(), "database", &[ns.host_addr]);
    let (cert, key) = authority.server_files();
    server.enable_tls(cert, key);
    let behavior = Behavior::accept_all().reply_delay(REPLY_DELAY);
    let smtp = SmtpServer::start_on(ns.bind_loopback(), behavior);
    let url = server.url_at(ns.host_addr, &authority.ca);
    let fixture = Fixture::new(
        &people(PEOPLE),
        &format!("send_log = \"{url}\"\n[smtp]\npool_size = {POOL_SIZE}\ntimeout_secs = 5\n"),
    );

    // A short lease (`MISSIVE_LEASE`): alone, the sender still stops within it.
    let env = [ENV[0], ("MISSIVE_LEASE", "3s")];
    let running = fixture.start_send_via(&ns.wrapper(), &smtp.url(), &[], &env);
    smtp.wait_until(RUN_LIMIT, |j| j.accepted().count() >= 40);
    ns.cut();
    let cut = Instant::now();
    let run = running
        .wait(Duration::from_secs(90))
        .expect("a sender cut off from its database stops by itself");
    let stopped_after = cut.elapsed();
    assert_eq!(run.code, 75, "{}", run.all());
    let during = smtp.journal().accepted().count();
    assert!(
        during < PEOPLE,
        "the run stopped before the end: {during} sent"
    );
    eprintln!("cut off after {during} sent; stopped {stopped_after:?} after the cut");

    ns.mend();
    let mut done = false;
    for _ in 0..4 {
        let run = fixture
            .start_send_via(&ns.wrapper(), &smtp.url(), &[], &env)
            .wait(RUN_LIMIT)
            .unwrap_or_else(|run| panic!("a run took over {RUN_LIMIT:?}: {}", run.all()));
        assert!([0, 75].contains(&run.code), "{}", run.all());
        if run.code == 0 {
            done = true;
            break;
        }
    }
    assert!(done, "not done after 4 runs");
    server.stop();
    server.start_again();
    let audit = Audit::of(status(&fixture, &[]), records(&server), &[smtp.journal()]);
    audit.assert_settled(&everyone(PEOPLE), &BTreeSet::new(), 0);
    // A second copy only for what the connections sent before the log was seen stalled:
    // what they carry in STALL, and the message in hand. Not the queue whose attempts were
    // written ahead (128 here: before the engine waited on a stalled log, 97 came twice).
    let bound = POOL_SIZE * (STALL.as_millis() / REPLY_DELAY.as_millis() + 2) as usize;
    let duplicates = audit.duplicates();
    eprintln!("{duplicates} duplicate(s), at most {bound}");
    assert!(duplicates <= bound, "{duplicates} duplicates");
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server and root: left to CI; run `cargo test --features db-tests --test tests netns::` (bash .ci/run does)"
)]
fn of_two_senders_the_one_cut_off_stops_in_its_lease_and_the_other_takes_its_people_over() {
    const PEOPLE: usize = 600;
    const LEASE: Duration = Duration::from_secs(3);
    let ns = Netns::new(1);
    let server = PgServer::start_listening_also(&[ns.host_addr]);
    let certs = tempfile::tempdir().unwrap();
    let authority = TestCa::generate_for(certs.path(), "database", &[ns.host_addr]);
    let (cert, key) = authority.server_files();
    server.enable_tls(cert, key);
    // The sender in the namespace has a slow relay of its own, beside it: the attempts it
    // made durable before the cut would take seconds to send, past its lease, were the lease
    // not heeded. The other sender, on this side, reaches the database directly.
    let its_smtp = SmtpServer::start_on(
        ns.bind_loopback(),
        Behavior::accept_all().reply_delay(Duration::from_millis(200)),
    );
    let other_smtp = SmtpServer::start_in_background(
        Behavior::accept_all().reply_delay(Duration::from_millis(5)),
    );
    let settings = |url: &str| {
        format!("send_log = \"{url}\"\n[smtp]\npool_size = {POOL_SIZE}\ntimeout_secs = 5\n")
    };
    let far = Fixture::new(
        &people(PEOPLE),
        &settings(&server.url_at(ns.host_addr, &authority.ca)),
    );
    let near = Fixture::new(&people(PEOPLE), &settings(&server.url()));
    let env = |host| [ENV[0], ("MISSIVE_LEASE", "3s"), ("MISSIVE_HOST", host)];
    let far_env = env("far");
    let near_env = env("near");

    let cut_off = far.start_send_via(&ns.wrapper(), &its_smtp.url(), &[], &far_env);
    let other = near.start_send_with(&other_smtp.url(), &[], &near_env);
    its_smtp.wait_until(RUN_LIMIT, |j| j.accepted().count() >= 10);
    ns.cut();
    let cut = Instant::now();
    // Within half a lease of its last renewal it hands nothing more over; a lease after the
    // cut, what its relay has is final.
    std::thread::sleep(LEASE);
    let at_lease = its_smtp.journal().accepted().count();
    let run = cut_off
        .wait(Duration::from_secs(90))
        .expect("the sender cut off stops by itself");
    assert_eq!(run.code, 75, "{}", run.all());
    assert_eq!(
        its_smtp.journal().accepted().count(),
        at_lease,
        "nothing handed over past the lease: {}",
        run.all()
    );
    eprintln!(
        "cut off after {at_lease} accepted; exited 75 {:?} after the cut",
        cut.elapsed()
    );

    // The other finishes, then takes over what the cut-off one held once its lease is gone.
    let run = other.wait(RUN_LIMIT).expect("the other sender ends");
    assert!([0, 75].contains(&run.code), "{}", run.all());
    let mut runs = 0;
    while status(&near, &[])["sent"] != PEOPLE as u64 {
        assert!(runs < 10, "{}", status(&near, &[]));
        runs += 1;
        std::thread::sleep(Duration::from_millis(500));
        let run = near
            .start_send_with(&other_smtp.url(), &[], &near_env)
            .wait(RUN_LIMIT)
            .expect("a run ends");
        assert!([0, 75].contains(&run.code), "{}", run.all());
    }
    let audit = Audit::of(
        status(&near, &[]),
        records(&server),
        &[its_smtp.journal(), other_smtp.journal()],
    );
    audit.assert_settled(&everyone(PEOPLE), &BTreeSet::new(), 0);
    // A second copy only for what the cut-off sender had on its way when it saw the stall.
    let bound = POOL_SIZE * (STALL.as_millis() / 200 + 2) as usize;
    let duplicates = audit.duplicates();
    eprintln!("{duplicates} duplicate(s), at most {bound}");
    assert!(duplicates <= bound, "{duplicates} duplicates");
}
