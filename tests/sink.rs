//! The engine delivering to a `Sink` (no network), as `examples/bench_render.rs` drives it:
//! every row goes through the real queue and workers, and the send log gets the records a run
//! against a server would write, an attempt then a `sent` with a queue id, for each person.

use crate::support::engine::Prepared;
use crate::support::harness::{Fixture, people};
use missive::recipients::RecipientReader;
use missive::send::Sink;
use missive::sendlog::FileLog;

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
