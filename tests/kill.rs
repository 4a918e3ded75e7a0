//! `kill -9` in the middle of a campaign, several times, then a run to the end: everyone got the
//! letter, and a second copy went only to people whose attempt was in doubt, with the same
//! Message-ID, at most two a connection a kill.
//!
//! The kill moments are random but seeded: the seed is printed, and `MISSIVE_KILL_SEED=<seed>`
//! replays a failure.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use crate::support::audit::State;

use crate::support::audit::Audit;
use crate::support::harness::{Fixture, RUN_LIMIT, people};
use crate::support::smtp_server::{Behavior, SmtpServer};

const PEOPLE: usize = 300;
const POOL_SIZE: usize = 4;
const KILLS: usize = 4;
/// The server takes this long to answer each message, so a run lasts a couple of seconds and
/// deliveries are in flight whenever the kill comes.
const REPLY_DELAY: Duration = Duration::from_millis(40);

fn seed() -> u64 {
    std::env::var("MISSIVE_KILL_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

#[test]
fn killed_mid_campaign_again_and_again_then_run_to_the_end_everyone_gets_it_once() {
    let seed = seed();
    eprintln!(
        "kill test seed {seed}: MISSIVE_KILL_SEED={seed} cargo test --test tests kill:: replays it"
    );
    let mut random = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let server = SmtpServer::start_in_background(Behavior::accept_all().reply_delay(REPLY_DELAY));
    let fixture = Fixture::new(
        &people(PEOPLE),
        &format!("[smtp]\npool_size = {POOL_SIZE}\ntimeout_secs = 5\n"),
    );

    let mut landed = 0;
    for kill in 1..=KILLS {
        let before = server.journal().accepted().count();
        let mut running = fixture.start_send(&server.url(), &[]);
        // Let the run get somewhere (a few messages accepted), then a random moment more.
        let progress = random.usize(1..=25);
        let pause = Duration::from_millis(random.u64(0..60));
        server.wait_until(RUN_LIMIT, |j| j.accepted().count() >= before + progress);
        std::thread::sleep(pause);
        let was_running = running.is_running();
        let run = running.kill();
        eprintln!(
            "kill {kill}: after {progress} accepted + {pause:?}, {}",
            if was_running {
                "killed"
            } else {
                "had already exited"
            }
        );
        if was_running {
            landed += 1;
        } else {
            assert!([0, 75].contains(&run.code), "{}", run.all());
        }
        Audit::take(&fixture, &[server.journal()]).assert_consistent();
    }
    assert!(
        landed >= KILLS - 1,
        "only {landed} of {KILLS} kills came mid-run (seed {seed}): the test proves little"
    );

    let runs = fixture.send_until_done(&server.url(), 5, |_| {});
    eprintln!(
        "{} run(s) to finish; {:?} in all",
        runs.len(),
        started.elapsed()
    );

    let audit = Audit::take(&fixture, &[server.journal()]);
    let everyone: BTreeSet<String> = (1..=PEOPLE)
        .map(|i| format!("person{i:02}@example.com"))
        .collect();
    audit.assert_settled(&everyone, &BTreeSet::new(), 0);
    let duplicates = audit.duplicates();
    eprintln!("{duplicates} duplicate(s) after {landed} kill(s)");
    // Per connection and kill: the message in hand, and the one before it if its acceptance
    // was not synced yet (outcomes are synced in batches, while the next message goes out; the
    // server's reply delay lets no connection finish two messages within one sync).
    assert!(
        duplicates <= 2 * POOL_SIZE * landed,
        "{duplicates} duplicates after {landed} kills with {POOL_SIZE} connections (seed {seed})"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the kill test took {:?}",
        started.elapsed()
    );
}

/// The log is written into room made ahead of its records (zeros, cut off when the log is
/// closed): a `kill -9` leaves that room in the file. `status` reads up to it, the next run cuts
/// it before writing, everyone gets the letter once (again only if in doubt), and the log at
/// rest is JSON lines again.
#[test]
fn killed_with_room_left_in_the_log_the_rerun_reads_up_to_it_and_sends_everyone_once() {
    const PEOPLE: usize = 40;
    let server = SmtpServer::start_in_background(Behavior::accept_all().reply_delay(REPLY_DELAY));
    let fixture = Fixture::new(&people(PEOPLE), "[smtp]\npool_size = 2\ntimeout_secs = 5\n");
    let mut running = fixture.start_send(&server.url(), &[]);
    server.wait_until(RUN_LIMIT, |j| j.accepted().count() >= 8);
    assert!(running.is_running(), "the run ended before the kill");
    running.kill();

    let bytes = std::fs::read(fixture.log_path()).unwrap();
    let room = bytes
        .iter()
        .position(|&b| b == 0)
        .expect("the killed run left its room in the log");
    assert!(bytes[room..].iter().all(|&b| b == 0));
    let audit = Audit::take(&fixture, &[server.journal()]);
    audit.assert_consistent();
    let sent = audit.with_state(State::Sent).len();
    assert!(sent >= 1, "status saw none of the records before the room");

    let runs = fixture.send_until_done(&server.url(), 3, |_| {});
    assert_eq!(runs.len(), 1, "{}", runs[0].all());
    let audit = Audit::take(&fixture, &[server.journal()]);
    let everyone: BTreeSet<String> = (1..=PEOPLE)
        .map(|i| format!("person{i:02}@example.com"))
        .collect();
    audit.assert_settled(&everyone, &BTreeSet::new(), 0);
    assert!(
        audit.duplicates() <= 2 * 2,
        "{} duplicates",
        audit.duplicates()
    );
    // Resent only those the log left in doubt.
    for (rcpt, copies) in &audit.copies {
        if copies.len() > 1 {
            assert!(
                audit.in_doubt_attempts(rcpt) >= 1,
                "{rcpt} got {} copies",
                copies.len()
            );
        }
    }
    let text = std::fs::read_to_string(fixture.log_path()).unwrap();
    assert!(!text.contains('\0'), "the log at rest still has its room");
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    }
    assert_eq!(text.lines().count(), 1 + fixture.log_records().len());
}
