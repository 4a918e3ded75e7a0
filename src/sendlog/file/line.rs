//! One record as a line of the file, written straight into the batch's buffer.
//!
//! The bytes are exactly those `serde_json` writes for a [`Record`] (the tests compare them,
//! escapes included), so logs read the same whatever wrote them, and replay, which parses
//! with `serde_json`, is untouched. Written by hand because serde's way through the flattened,
//! tagged event (a map serializer, a string escaper called per field) was most of what the log
//! added to the engine's instructions under callgrind.

use crate::sendlog::{Event, Record};

/// Appends `record` as one JSON object, without its newline.
pub(super) fn write_record(out: &mut Vec<u8>, record: &Record) {
    out.extend_from_slice(b"{\"at\":");
    string(out, &record.at);
    out.extend_from_slice(b",\"event\":");
    match &record.event {
        Event::Attempt { letter } => {
            out.extend_from_slice(b"\"attempt\"");
            field(out, "letter", letter.as_deref());
        }
        Event::Sent { reply, via } => {
            out.extend_from_slice(b"\"sent\"");
            field(out, "reply", Some(reply));
            field(out, "via", via.as_deref());
        }
        Event::Deferred { reply, retry_at } => {
            out.extend_from_slice(b"\"deferred\"");
            field(out, "reply", Some(reply));
            field(out, "retry_at", retry_at.as_deref());
        }
        Event::Failed { reply } => {
            out.extend_from_slice(b"\"failed\"");
            field(out, "reply", Some(reply));
        }
        Event::Withdrawn => out.extend_from_slice(b"\"withdrawn\""),
    }
    field(out, "rcpt", Some(&record.rcpt));
    field(out, "message_id", Some(&record.message_id));
    out.push(b'}');
}

/// `,"name":"value"`, or nothing for a value that is absent (serde's `skip_serializing_if`).
fn field(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        string(out, value);
    }
}

/// A JSON string as `serde_json` escapes it: `"`, `\` and control characters; everything
/// else, non-ASCII included, as it is.
fn string(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(record: &Record) -> String {
        let mut out = Vec::new();
        write_record(&mut out, record);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_record_is_written_as_serde_json_writes_it() {
        // Every byte below 0x80, and some beyond, in every field that can hold text.
        let all: String = (0u8..0x80).map(char::from).collect::<String>() + "é€😀\u{7f}\u{2028}";
        let text = |s: &str| format!("{s}{all}");
        let some = |s: &str| Some(text(s));
        let events = [
            Event::Attempt { letter: None },
            Event::Attempt { letter: some("L") },
            Event::Sent {
                reply: text("250 ok"),
                via: None,
            },
            Event::Sent {
                reply: text("250"),
                via: some("fallback"),
            },
            Event::Deferred {
                reply: text("451"),
                retry_at: None,
            },
            Event::Deferred {
                reply: text("451"),
                retry_at: some("2026"),
            },
            Event::Failed { reply: text("550") },
            Event::Withdrawn,
        ];
        for event in events {
            for (rcpt, id) in [
                ("a@example.com", "<i@x>"),
                (all.as_str(), all.as_str()),
                ("", ""),
            ] {
                let record = Record {
                    at: text("2026-11-30T07:00:00Z"),
                    event: event.clone(),
                    rcpt: rcpt.to_owned(),
                    message_id: id.to_owned(),
                };
                let ours = line(&record);
                assert_eq!(ours, serde_json::to_string(&record).unwrap());
                assert_eq!(serde_json::from_str::<Record>(&ours).unwrap(), record);
            }
        }
    }
}
