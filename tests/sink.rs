//! The engine delivering to a `Sink` (no network), as `examples/bench_render.rs` drives it:
//! every row goes through the real queue and workers, and the send log gets the records a run
//! against a server would write, an attempt then a `sent` with a queue id, for each person.

use std::sync::Arc;

use crate::support::harness::{Fixture, people};
use missive::campaign::Campaign;
use missive::letter::Letter;
use missive::message::Composer;
use missive::ratelimit::{Limits, Pace};
use missive::recipients::RecipientReader;
use missive::render::{Frame, Template};
use missive::send::{Content, Engine, InDoubt, RunLimits, Sink};
use missive::sendlog::{FileLog, LogWriter};

#[test]
fn the_engine_delivers_every_row_to_a_sink_and_logs_an_attempt_and_a_sent_for_each() {
    let fixture = Fixture::new(&people(5), "");
    let campaign = Campaign::load(&fixture.campaign()).unwrap();
    let letter = Letter::load(&campaign.letter_path, &campaign.language).unwrap();
    let frame = Frame {
        subject: &campaign.subject,
        preheader: &campaign.preheader,
        language: &campaign.language,
        unsubscribe: None,
    };
    let template = Template::new(&letter, &frame);
    let composer = Composer::new(
        &campaign.id,
        campaign.from.clone(),
        campaign.reply_to.clone(),
        &campaign.subject,
    )
    .with_fixed_parts(&template.fixed_parts());
    let content = Content {
        template: &template,
        composer: &composer,
        fingerprint: "sink-test",
    };
    let mut reader =
        RecipientReader::open(&campaign.recipients_path, &campaign.name_columns).unwrap();
    let (file_log, replay) = FileLog::open(&fixture.log_path(), &campaign.id).unwrap();
    let (log, log_thread) = LogWriter::spawn(Box::new(file_log));
    let sink = Sink::default();
    let engine = Engine {
        route: sink.clone(),
        log,
        connections: 2,
        retry: Default::default(),
        pace: Pace::new(&Limits::default(), &Default::default()),
        in_doubt: InDoubt::Resend,
        progress: Arc::default(),
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(missive::send::run(
            &content,
            &mut reader,
            &replay,
            engine,
            &RunLimits::default(),
            std::future::pending(),
        ))
        .unwrap();
    log_thread.join().unwrap();

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
