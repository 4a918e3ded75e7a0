//! The engine delivering to a `Sink` (no network), as `examples/bench_render.rs` drives it:
//! every row goes through the real queue and workers, and the send log gets the records a run
//! against a server would write, an attempt then a `sent` with a queue id, for each person.
//! Driven in-process too, against a real relay, over a send log made to stall: once a write
//! has gone unanswered past `STALL` no new message goes, whether the log then fails or a
//! signal comes first, and the run ends.

use crate::support::engine::{Prepared, loopback_route};
use crate::support::harness::{Fixture, people};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use missive::ratelimit::Limits;
use missive::recipients::RecipientReader;
use missive::send::{RunLimits, RunReport, Sink, Stopped};
use missive::sendlog::{FileLog, Record, Replay, STALL, SendLog, SendLogError};

use crate::support::smtp_server::{Behavior, SmtpServer};

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

/// A send log that answers at once until it holds `fine` records, then takes `hang` over the
/// next write and answers it (and, when it `fails`, every later one) with a failure, else Ok.
/// It notes when that write began.
struct Stalling {
    fine: usize,
    hang: Duration,
    fails: bool,
    records: usize,
    began: Arc<Mutex<Option<Instant>>>,
}

impl SendLog for Stalling {
    fn append(&mut self, records: &[Record]) -> Result<Vec<usize>, SendLogError> {
        let stalls = self.records < self.fine && self.records + records.len() >= self.fine;
        self.records += records.len();
        if stalls {
            *self.began.lock().unwrap() = Some(Instant::now());
            std::thread::sleep(self.hang);
        }
        if self.fails && self.records >= self.fine {
            return Err(SendLogError::Io {
                path: "stalling".into(),
                source: std::io::Error::other("cut off"),
            });
        }
        Ok(Vec::new())
    }
}

/// Runs 300 people through a relay that takes 20 ms a message over a [`Stalling`] log (it
/// stalls for 1.5 s once 80 records are durable, most of them attempts written ahead), and
/// the caller's shutdown `signal_after` the stall began, if given. The run must end within
/// 10 s (it runs on a thread of its own, so a hang fails the test rather than holding it).
/// Returns the run's result, the messages the relay took once the stall was over STALL old
/// (plus a margin for the workers to look), and after the signal.
fn run_over_a_stalling_log(
    fails: bool,
    signal_after: Option<Duration>,
) -> (Result<RunReport, String>, usize, usize) {
    let hang = Duration::from_millis(1500);
    let server = SmtpServer::start_in_background(
        Behavior::accept_all().reply_delay(Duration::from_millis(20)),
    );
    let fixture = Fixture::new(&people(300), "");
    let began = Arc::new(Mutex::new(None));
    let log = Stalling {
        fine: 80,
        hang,
        fails,
        records: 0,
        began: Arc::clone(&began),
    };
    let route = loopback_route(server.port());
    let (done, result) = std::sync::mpsc::channel();
    let stall = Arc::clone(&began);
    std::thread::spawn(move || {
        let prepared = Prepared::load(&fixture);
        let campaign = &prepared.campaign;
        let mut reader =
            RecipientReader::open(&campaign.recipients_path, &campaign.name_columns).unwrap();
        let shutdown = async move {
            let Some(after) = signal_after else {
                return std::future::pending().await;
            };
            loop {
                let began = *stall.lock().unwrap();
                if let Some(began) = began
                    && began.elapsed() >= after
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let pace = (&Limits::default(), &RunLimits::default());
        let report = prepared
            .send_until(
                &mut reader,
                &Replay::default(),
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
        .recv_timeout(Duration::from_secs(10))
        .expect("the run ends while its log stalls, is stopped or fails");
    let began = began.lock().unwrap().expect("the log stalled");
    let received = server.messages();
    let after = |from: Duration| received.iter().filter(|m| m.at > began + from).count();
    let seen_stalled = after(STALL + Duration::from_millis(100));
    let signalled = signal_after.map_or(0, |signal| after(signal + Duration::from_millis(50)));
    (report, seen_stalled, signalled)
}

#[test]
fn a_log_that_fails_while_it_stalls_ends_the_run_with_its_error_and_no_new_message() {
    let (report, after, _) = run_over_a_stalling_log(true, None);
    let error = report.expect_err("the log failed");
    assert!(error.contains("cut off"), "{error}");
    // Only what the two connections had in hand once the write was seen stalled: a message
    // each and the one pipelined behind it (38 went with the engine not looking).
    eprintln!("{after} message(s) once the log was seen stalled");
    assert!(
        after <= 4,
        "{after} messages went while the log was stalled"
    );
}

#[test]
fn a_signal_while_the_log_stalls_stops_the_run_once_the_log_answers() {
    let (report, _, after) = run_over_a_stalling_log(false, Some(Duration::from_millis(600)));
    let report = report.expect("the log answered");
    assert_eq!(report.stopped, Some(Stopped::Interrupted), "{report:?}");
    assert!(after <= 4, "{after} messages went after the signal");
    assert!(
        report.counts.sent < 300,
        "the signal stopped the run: {report:?}"
    );
}
