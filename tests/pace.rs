//! Pacing and quotas, measured against a clock on what a real SMTP server received.

use std::time::Duration;

use crate::support::harness::{Fixture, people};
use crate::support::smtp_server::{Behavior, SmtpServer};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn messages_arrive_at_the_configured_rate() {
    // 21 messages at 10 a second over 4 connections, none back to back: 20 intervals of 100 ms.
    // Never faster, in any run. ±10 % on the slow side: the server's clock readings suffer the
    // scheduling noise of a loaded 2-core machine, which can only make a run slower, so that
    // bound is judged on the best of three runs. The limiter's own precision (2 %) is tested
    // in `ratelimit`; this checks that the binary paces its sending at the configured rate.
    let mut spans = Vec::new();
    for _ in 0..3 {
        let server = SmtpServer::start_in_background(Behavior::accept_all());
        let fixture = Fixture::new(&people(21), "[smtp]\nrate = 10\nburst = 1\npool_size = 4\n");
        let run = fixture.send(&server.url(), &[]);
        assert_eq!(run.code, 0, "{}", run.all());
        let mut times: Vec<_> = server.wait_for(21, WAIT).iter().map(|m| m.at).collect();
        assert_eq!(times.len(), 21);
        times.sort();
        // From the 5th on: the first four each open a connection first, which delays their
        // arrival but not their slot. 16 intervals of 100 ms.
        let span = times[20] - times[4];
        assert!(
            span >= Duration::from_millis(1440),
            "16 intervals at 10/s took {span:?}: faster than the rate"
        );
        spans.push(span);
        if span <= Duration::from_millis(1760) {
            return;
        }
    }
    panic!("16 intervals at 10/s took {spans:?}");
}

#[test]
fn send_rate_replaces_the_campaign_rate() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(6), "[smtp]\nrate = 1\n");
    let started = std::time::Instant::now();
    let run = fixture.send(&server.url(), &["--rate", "50"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.wait_for(6, WAIT).len(), 6);
}

#[test]
fn an_hourly_quota_holds_across_runs() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(5), "[smtp]\nper_hour = 3\n");
    let first = fixture.send(&server.url(), &[]);
    assert_eq!(first.code, 75, "{}", first.all());
    assert!(
        first.stdout.contains("the hour quota is spent until"),
        "{}",
        first.all()
    );
    assert_eq!(server.wait_for(3, WAIT).len(), 3, "{}", first.all());

    // A second run (cron, ten minutes later) counts the first run's messages from the log.
    let second = fixture.send(&server.url(), &[]);
    assert_eq!(second.code, 75, "{}", second.all());
    assert!(second.stdout.contains("0 sent"), "{}", second.all());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), 3);

    let status: serde_json::Value =
        serde_json::from_str(&fixture.command("status", &["--json"]).stdout).unwrap();
    assert_eq!(status["quota_left"]["hour"], 0);
    assert_eq!(status["attempts_last_hour"], 3);
    assert_eq!(
        (status["sent"].as_u64(), status["pending"].as_u64()),
        (Some(3), Some(2))
    );
    // 2 left at 3 an hour: 40 minutes.
    assert_eq!(status["eta_secs"], 2400);
}

#[test]
fn nothing_is_sent_before_send_after() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(2), "send_after = \"2999-01-01T00:00:00Z\"\n");
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 75, "{}", run.all());
    assert!(run.stdout.contains("send_after"), "{}", run.all());
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.messages().is_empty());

    let ready = Fixture::new(&people(2), "send_after = \"2020-01-01T00:00:00Z\"\n");
    assert_eq!(ready.send(&server.url(), &[]).code, 0);
    assert_eq!(server.wait_for(2, WAIT).len(), 2);
}

#[test]
fn a_slow_pace_keeps_to_the_runs_max_duration() {
    // One message every 20 s, and a run of 2 s: the second message's turn comes after the
    // run's budget, which the wait must not outlast.
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(3), "[smtp]\nrate = 0.05\nburst = 1\n");
    let started = std::time::Instant::now();
    let run = fixture.send(&server.url(), &["--max-duration", "2s"]);
    let took = started.elapsed();
    assert_eq!(run.code, 75, "{}", run.all());
    assert!(
        run.stdout.contains("--max-duration reached"),
        "{}",
        run.all()
    );
    assert!(took < Duration::from_secs(6), "a run of 2 s took {took:?}");
    assert_eq!(server.journal().accepted().count(), 1);
    assert_eq!(fixture.status()["pending"], 2, "{}", fixture.status());
}
