//! The engine delivering to a `Sink` (no network), as `examples/bench_render.rs` drives it:
//! every row goes through the real queue and workers, and the send log gets the records a run
//! against a server would write, an attempt then a `sent` with a queue id, for each person.

use crate::support::engine::Prepared;
use crate::support::harness::{Fixture, people};
use std::sync::Arc;

use missive::ratelimit::Limits;
use missive::recipients::RecipientReader;
use missive::send::{RunLimits, RunReport, Sink, Stopped};
use missive::sendlog::{FileLog, Record, Replay, SendLog, SendLogError};

#[test]
fn the_engine_delivers_every_row_to_a_sink_and_logs_an_attempt_and_a_sent_for_each() {
    let fixture = Fixture::new(&people(5), "");
    let prepared = Prepared::load(&fixture);
    let campaign = &prepared.campaign;
    let mut reader =
        RecipientReader::open(&campaign.recipients_path, &campaign.name_columns).unwrap();
    let (file_log, replay) = FileLog::open(&fixture.log_path(), &campaign.id).unwrap();
    let sink = Sink::default();
    let report = prepared
        .send(
            &mut reader,
            &replay,
            sink.clone(),
            Box::new(file_log),
            "sink-test",
        )
        .unwrap();

    assert_eq!(report.counts.sent, 5, "{report:?}");
    let (messages, bytes) = sink.received();
    assert_eq!(messages, 5);
    assert!(
        bytes > 5 * 1000,
        "whole messages went to the sink: {bytes} bytes"
    );
    let records = fixture.log_records();
    for n in 1..=5 {
        let rcpt = format!("person{n:02}@example.com");
        let events: Vec<_> = records
            .iter()
            .filter(|r| r["rcpt"] == rcpt.as_str())
            .collect();
        assert_eq!(events.len(), 2, "{rcpt}: {events:?}");
        assert_eq!(events[0]["event"], "attempt");
        assert_eq!(events[0]["letter"], "sink-test");
        assert_eq!(events[1]["event"], "sent");
        let reply = events[1]["reply"].as_str().unwrap();
        assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
        assert!(events[1].get("via").is_none(), "the sink is the primary");
    }
}

/// A send log that answers its first `fine` batches at once, then takes `hang` over the next
/// one, and answers it (and every later one) with `then`: Ok, or a failure.
struct Stalling {
    fine: usize,
    hang: std::time::Duration,
    fails: bool,
    batches: usize,
    sent_when_stalled: Arc<std::sync::Mutex<Option<u64>>>,
    sink: Sink,
}

impl SendLog for Stalling {
    fn append(&mut self, _: &[Record]) -> Result<(), SendLogError> {
        self.batches += 1;
        if self.batches == self.fine + 1 {
            *self.sent_when_stalled.lock().unwrap() = Some(self.sink.received().0);
            std::thread::sleep(self.hang);
        }
        if self.fails && self.batches > self.fine {
            return Err(SendLogError::Io {
                path: "stalling".into(),
                source: std::io::Error::other("cut off"),
            });
        }
        Ok(())
    }
}

/// Runs 200 people to a sink over a [`Stalling`] log, `shutdown` after `signal_after`; the run
/// must end within `within` (it runs on a thread of its own, so a hang fails the test rather
/// than holding it). Returns the run's result, the messages the sink took after the signal
/// (without one, after the log stalled), and how long the run took.
fn run_over_a_stalling_log(
    fails: bool,
    signal_after: Option<std::time::Duration>,
) -> (Result<RunReport, String>, u64, std::time::Duration) {
    let hang = std::time::Duration::from_millis(1500);
    let fixture = Fixture::new(&people(200), "");
    let sink = Sink::default();
    let stalled_at = Arc::new(std::sync::Mutex::new(None));
    let log = Stalling {
        fine: 3,
        hang,
        fails,
        batches: 0,
        sent_when_stalled: Arc::clone(&stalled_at),
        sink: sink.clone(),
    };
    let (done, result) = std::sync::mpsc::channel();
    let route = sink.clone();
    let sent_at_signal = Arc::new(std::sync::Mutex::new(None));
    let (sink, signal_seen) = (sink, Arc::clone(&sent_at_signal));
    let started = std::time::Instant::now();
    let counting = sink.clone();
    std::thread::spawn(move || {
        let sink = counting;
        let prepared = Prepared::load(&fixture);
        let campaign = &prepared.campaign;
        let mut reader =
            RecipientReader::open(&campaign.recipients_path, &campaign.name_columns).unwrap();
        let replay = Replay::default();
        let (counted, at_signal) = (sink.clone(), Arc::clone(&sent_at_signal));
        let shutdown = async move {
            match signal_after {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
            *at_signal.lock().unwrap() = Some(counted.received().0);
        };
        let pace = (&Limits::default(), &RunLimits::default());
        let report = prepared
            .send_until(
                &mut reader,
                &replay,
                route,
                Box::new(log),
                "stall",
                pace,
                shutdown,
            )
            .map_err(|e| e.to_string());
        let _ = done.send(report);
    });
    let report = result
        .recv_timeout(hang * 4)
        .expect("the run ends while its log stalls, is stopped or fails");
    let total = sink.received().0;
    // Counted from the signal when there is one, else from the stall's start.
    let from = match *signal_seen.lock().unwrap() {
        Some(at_signal) => at_signal,
        None => stalled_at.lock().unwrap().expect("the log stalled"),
    };
    (report, total - from, started.elapsed())
}

#[test]
fn a_log_that_fails_while_it_stalls_ends_the_run_with_its_error_and_no_new_message() {
    let (report, after, _) = run_over_a_stalling_log(true, None);
    let error = report.expect_err("the log failed");
    assert!(error.contains("cut off"), "{error}");
    // Only what the two connections had in hand when the write began, at most.
    assert!(
        after <= 4,
        "{after} messages went while the log was stalled"
    );
}

#[test]
fn a_signal_while_the_log_stalls_stops_the_run_once_the_log_answers() {
    let signal = std::time::Duration::from_millis(600);
    let (report, after, took) = run_over_a_stalling_log(false, Some(signal));
    let report = report.expect("the log answered");
    assert_eq!(report.stopped, Some(Stopped::Interrupted), "{report:?}");
    // The log was stalled at the signal: nothing new went, only what was in hand.
    assert!(after <= 4, "{after} messages went after the signal");
    assert!(
        report.counts.sent < 200,
        "the signal stopped the run: {report:?}"
    );
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}
