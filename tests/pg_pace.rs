//! The pace and quotas of a campaign shared by several senders through PostgreSQL hold for the
//! campaign as a whole: three real `missive send` processes, each with a test SMTP server of
//! its own, and the servers' receive times counted together.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::pg_send::{ENV, everyone, records, status};
use crate::support::audit::Audit;
use crate::support::harness::{Fixture, RUN_LIMIT, Run, people};
use crate::support::postgres::PgServer;
use crate::support::smtp_server::{Behavior, Journal, SmtpServer};

/// A campaign of `n` people in the database at `server`, with `limits` under `[smtp]`.
fn campaign(server: &PgServer, n: usize, limits: &str) -> Fixture {
    Fixture::new(
        &people(n),
        &format!(
            "send_log = \"{}\"\n[smtp]\npool_size = 4\ntimeout_secs = 5\n{limits}\n",
            server.url()
        ),
    )
}

fn send_all(fixture: &Fixture, smtps: &[SmtpServer]) -> Vec<Run> {
    let running: Vec<_> = smtps
        .iter()
        .map(|smtp| fixture.start_send_with(&smtp.url(), &[], &ENV))
        .collect();
    running
        .into_iter()
        .map(|r| {
            // A run waits for a spent quota up to a minute, silently, after its start-up and
            // before its last sends: three debug builds beside the other PostgreSQL tests of a
            // CI run took over 90 s in all (a hang still shows, at 140 s).
            r.wait(RUN_LIMIT + Duration::from_secs(120))
                .unwrap_or_else(|run| panic!("a run took over its limit: {}", run.all()))
        })
        .collect()
}

/// Every server's receive times, together, in order.
fn received(journals: &[Journal]) -> Vec<Instant> {
    let mut times: Vec<Instant> = journals
        .iter()
        .flat_map(|j| j.accepted().map(|m| m.at))
        .collect();
    times.sort();
    times
}

/// The most messages any stretch of `length` held, over all servers.
fn busiest(times: &[Instant], length: Duration) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t < times[i] + length)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_pace::` (bash .ci/run does)"
)]
fn three_senders_keep_the_campaigns_per_minute_quota_together() {
    const PEOPLE: usize = 50;
    const PER_MINUTE: usize = 30;
    let server = PgServer::start();
    let fixture = campaign(&server, PEOPLE, &format!("per_minute = {PER_MINUTE}"));
    let smtps: Vec<SmtpServer> = (0..3)
        .map(|_| SmtpServer::start_in_background(Behavior::accept_all()))
        .collect();
    // Alone, each would send its own 30 at once: 50 in the first second.
    let mut runs = send_all(&fixture, &smtps);
    for run in &runs {
        assert!([0, 75].contains(&run.code), "{}", run.all());
    }
    // What is left goes in later runs (a quota spent for longer than a run waits stops it).
    let start = Instant::now();
    while !runs.iter().any(|r| r.code == 0) && start.elapsed() < Duration::from_secs(150) {
        runs = send_all(&fixture, &smtps);
    }
    let journals: Vec<Journal> = smtps.iter().map(SmtpServer::journal).collect();
    let times = received(&journals);
    let most = busiest(&times, Duration::from_secs(60));
    let shares: Vec<usize> = journals.iter().map(|j| j.accepted().count()).collect();
    let granted = server.sql("SELECT sum(granted) FROM missive.permits");
    eprintln!("shares {shares:?}; the busiest minute held {most}; permits granted {granted}");
    assert!(
        most <= PER_MINUTE,
        "a minute held {most} messages, over the campaign's {PER_MINUTE}"
    );
    let audit = Audit::of(status(&fixture, &[]), records(&server), &journals);
    audit.assert_settled(&everyone(PEOPLE), &BTreeSet::new(), 0);
    audit.assert_accepted_at_most_once();
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_pace::` (bash .ci/run does)"
)]
fn three_senders_keep_the_campaigns_rate_together() {
    const PEOPLE: usize = 120;
    const RATE: f64 = 20.0;
    let server = PgServer::start();
    let fixture = campaign(&server, PEOPLE, &format!("rate = {RATE}"));
    let smtps: Vec<SmtpServer> = (0..3)
        .map(|_| SmtpServer::start_in_background(Behavior::accept_all()))
        .collect();
    let runs = send_all(&fixture, &smtps);
    for run in &runs {
        assert!([0, 75].contains(&run.code), "{}", run.all());
    }
    let journals: Vec<Journal> = smtps.iter().map(SmtpServer::journal).collect();
    let times = received(&journals);
    // Permits are granted by the second: any stretch of T seconds holds at most the rate's
    // T + 2 seconds' worth (see the README's "Several senders").
    for seconds in [1u64, 2, 4] {
        let most = busiest(&times, Duration::from_secs(seconds));
        let bound = (RATE * (seconds + 2) as f64) as usize;
        eprintln!("the busiest {seconds} s held {most} (bound {bound})");
        assert!(most <= bound, "{seconds} s held {most}, over {bound}");
    }
    let span = times.last().unwrap().duration_since(times[0]).as_secs_f64();
    let least = PEOPLE as f64 / RATE - 2.0;
    eprintln!("{PEOPLE} messages in {span:.2} s at {RATE}/s");
    assert!(
        span >= least,
        "{PEOPLE} messages in {span:.2} s at {RATE}/s"
    );
    let audit = Audit::of(status(&fixture, &[]), records(&server), &journals);
    audit.assert_settled(&everyone(PEOPLE), &BTreeSet::new(), 0);
    audit.assert_accepted_at_most_once();
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_pace::` (bash .ci/run does)"
)]
fn a_fractional_rate_holds_across_senders_not_rounded_down_to_whole_seconds() {
    use missive::ratelimit::Limits;
    use missive::sendlog::SendLog;
    const SECONDS: u64 = 10;
    let server = PgServer::start();
    let target = target(&server);
    let limits = Limits {
        rate: Some(1.5),
        burst: 2,
        ..Limits::default()
    };
    let mut logs: Vec<_> = (0..2)
        .map(|_| missive::sendlog::PgLog::open(&target, "c").unwrap().0)
        .collect();
    let permits: Vec<_> = logs
        .iter_mut()
        .map(|log| log.share_pace(&limits).expect("a rate is shared"))
        .collect();
    let taken: usize = std::thread::scope(|scope| {
        let takers: Vec<_> = permits
            .iter()
            .map(|permits| {
                scope.spawn(move || permits_taken(permits, Duration::from_secs(SECONDS)))
            })
            .collect();
        takers.into_iter().map(|taker| taker.join().unwrap()).sum()
    });
    // 15 in 10 s, less a grant's edge; never over the rate's 10 + 2 s (18). Granted by whole
    // seconds, 1.5 would be 1 a second: 10 or 11.
    eprintln!("{taken} permits in {SECONDS} s at 1.5/s, between two senders");
    assert!(
        (13..=18).contains(&taken),
        "{taken} permits in {SECONDS} s at 1.5/s"
    );
}

/// The database at `server`, as a sender reaches it.
fn target(server: &PgServer) -> missive::sendlog::PgTarget {
    missive::sendlog::PgTarget::parse(&server.url(), |name| {
        (name == "PGPASSWORD").then(|| PgServer::PASSWORD.to_owned())
    })
    .unwrap()
}

/// Permits this sender can take within `within`, one after another.
fn permits_taken(permits: &missive::ratelimit::Permits, within: Duration) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut taken = 0;
        let end = tokio::time::Instant::now() + within;
        while let Ok(Ok(())) =
            tokio::time::timeout_at(end, permits.take(Duration::from_secs(60))).await
        {
            taken += 1;
        }
        taken
    })
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_pace::` (bash .ci/run does)"
)]
fn a_sender_whose_granting_connection_is_ended_is_granted_permits_again() {
    use missive::ratelimit::Limits;
    use missive::sendlog::{PgLog, PgTarget, SendLog};
    let server = PgServer::start();
    let target = PgTarget::parse(&server.url(), |name| {
        (name == "PGPASSWORD").then(|| PgServer::PASSWORD.to_owned())
    })
    .unwrap();
    let (mut log, _) = PgLog::open(&target, "c").unwrap();
    let limits = Limits {
        rate: Some(20.0),
        burst: 2,
        ..Limits::default()
    };
    let permits = log.share_pace(&limits).expect("a rate is shared");
    assert!(permits_taken(&permits, Duration::from_secs(1)) > 0);
    // The granter's connection is the sender's last (after the log's and its lease's): an
    // administrator, a failover or an idle timeout ends it, and only it.
    let ended = server.sql(
        "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity \
         WHERE application_name LIKE 'missive %' ORDER BY backend_start DESC LIMIT 1) AS last",
    );
    assert_eq!(ended, "1");
    std::thread::sleep(Duration::from_millis(200));
    // Its lease is still renewed and its batches still go: it must not wait for permits forever.
    let taken = permits_taken(&permits, Duration::from_secs(3));
    assert!(
        taken >= 20,
        "{taken} permits in 3 s after the granter's connection ended"
    );
    drop(log);
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_pace::` (bash .ci/run does)"
)]
fn what_an_imported_file_sent_counts_in_the_quotas_of_senders_that_start_together() {
    let server = PgServer::start();
    let target = target(&server);
    // A file log that sent six of the minute's ten, seconds ago, moved into the database.
    missive::sendlog::PgLog::import(&target, "c", sent_seconds_ago(SENT).into_iter().map(Ok))
        .unwrap();
    let admitted = admitted_by_two_senders(&target);
    assert_eq!(
        SENT + admitted,
        PER_MINUTE,
        "{SENT} sent from the file, {admitted} admitted by the two senders"
    );
}

/// The quota of [`admitted_by_two_senders`], and what was sent before they start.
const PER_MINUTE: usize = 10;
const SENT: usize = 6;

/// The records of `n` people mailed five seconds ago.
fn sent_seconds_ago(n: usize) -> Vec<missive::sendlog::Record> {
    use missive::sendlog::{Event, Record, timestamp};
    let at = timestamp(std::time::SystemTime::now() - Duration::from_secs(5));
    (0..n)
        .flat_map(|i| {
            let rcpt = format!("person{i}@example.com");
            let id = format!("<{i}@missive>");
            let sent = Event::Sent {
                reply: "250 ok".into(),
                via: None,
            };
            [Event::attempt("L"), sent].map(|event| Record {
                at: at.clone(),
                ..Record::new(event, &rcpt, &id)
            })
        })
        .collect()
}

/// How many messages two senders that open campaign `c` at once (cron on two machines) admit
/// within [`PER_MINUTE`], each replaying the [`SENT`] already sent.
fn admitted_by_two_senders(target: &missive::sendlog::PgTarget) -> usize {
    use missive::ratelimit::{Limits, Pace};
    use missive::sendlog::{PgLog, SendLog};
    let limits = Limits {
        per_minute: Some(PER_MINUTE as u32),
        burst: 2,
        ..Limits::default()
    };
    let mut senders: Vec<_> = (0..2).map(|_| PgLog::open(target, "c").unwrap()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut admitted = 0;
    for (log, replay) in &mut senders {
        assert_eq!(replay.history().values().sum::<u32>() as usize, SENT);
        let pace = Pace::new(&limits, replay.history()).sharing(log.share_pace(&limits));
        admitted += runtime.block_on(async {
            let mut admitted = 0;
            let patience = Duration::from_secs(1);
            while let Ok(Ok(())) =
                tokio::time::timeout(Duration::from_secs(3), pace.admit(patience)).await
            {
                admitted += 1;
            }
            admitted
        });
    }
    admitted
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_pace::` (bash .ci/run does)"
)]
fn a_rate_under_one_a_minute_is_waited_for_not_a_quota_that_stops_the_run() {
    use missive::ratelimit::Limits;
    use missive::sendlog::{PgLog, PgTarget, SendLog};
    let server = PgServer::start();
    let target = PgTarget::parse(&server.url(), |name| {
        (name == "PGPASSWORD").then(|| PgServer::PASSWORD.to_owned())
    })
    .unwrap();
    // One message every 80 s: a pace, which a run waits for however slow (as its own pace,
    // on a file log), not a quota spent for longer than it may wait.
    let limits = Limits {
        rate: Some(0.0125),
        burst: 1,
        ..Limits::default()
    };
    let (mut first_log, _) = PgLog::open(&target, "c").unwrap();
    let (mut second_log, _) = PgLog::open(&target, "c").unwrap();
    let first = first_log.share_pace(&limits).unwrap();
    let second = second_log.share_pace(&limits).unwrap();
    assert_eq!(permits_taken(&first, Duration::from_secs(2)), 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let waited = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), second.take(Duration::from_secs(4))).await
    });
    assert!(
        waited.is_err(),
        "the other sender waits its turn in the pace: {waited:?}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_pace::` (bash .ci/run does)"
)]
fn what_was_sent_before_the_campaign_had_limits_counts_in_its_senders_quotas() {
    use missive::sendlog::{PgLog, SendLog};
    let server = PgServer::start();
    let target = target(&server);
    // A sender without limits asks for no permits (nor did a missive before schema 3): six
    // sent seconds ago leave no trace in them.
    let (mut unlimited, _) = PgLog::open(&target, "c").unwrap();
    let refused = unlimited.append(&sent_seconds_ago(SENT)).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    drop(unlimited);
    assert_eq!(server.sql("SELECT count(*) FROM missive.permits"), "0");
    let admitted = admitted_by_two_senders(&target);
    assert_eq!(
        SENT + admitted,
        PER_MINUTE,
        "{SENT} sent without limits, {admitted} admitted by the two senders with them"
    );
}
