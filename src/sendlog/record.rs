//! What a send log holds, as written: its first line naming the campaign ([`Header`]), then one
//! [`Record`] a line (an attempt or its outcome, for one person), with times as the log writes
//! them. Every backend stores these; the replay reads them back.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The first line of a log: the campaign it belongs to.
/// `{"at":"2026-11-25T01:02:03Z","event":"campaign","campaign":"fails-2023-fr"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// When the log was created.
    pub at: String,
    pub event: HeaderEvent,
    /// The campaign's `id`.
    pub campaign: String,
}

/// The `event` of a [`Header`]: always `campaign`, which no record of a person uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderEvent {
    Campaign,
}

impl Header {
    pub fn new(campaign: &str) -> Header {
        Header {
            at: timestamp(SystemTime::now()),
            event: HeaderEvent::Campaign,
            campaign: campaign.to_owned(),
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC, for people reading the log.
    pub at: String,
    #[serde(flatten)]
    pub event: Event,
    /// The address as sent to, lower-cased.
    pub rcpt: String,
    pub message_id: String,
}

/// What happened, as the `event` key of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The message is about to be handed to the server.
    Attempt {
        /// Fingerprint of the letter and headers being sent, so a changed letter is noticed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        letter: Option<String>,
    },
    /// The server accepted it (its reply, with the queue id).
    Sent {
        reply: String,
        /// The relay that took it, when it was not the primary one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<String>,
    },
    /// A transient refusal (4xx): try again at `retry_at` (RFC 3339).
    Deferred {
        reply: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at: Option<String>,
    },
    /// A permanent refusal (5xx), or retries given up: never tried again.
    Failed { reply: String },
    /// The run stopped before this attempt was handed over (attempts are written ahead, while
    /// the message waits its turn): as if it had not been made.
    Withdrawn,
}

impl Event {
    pub fn attempt(letter: &str) -> Event {
        Event::Attempt {
            letter: Some(letter.to_owned()),
        }
    }
}

/// A time as the log writes it: RFC 3339, UTC, to the second.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

pub(crate) fn parse_timestamp(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text).ok()
}

impl Record {
    pub fn new(event: Event, rcpt: &str, message_id: &str) -> Record {
        Record {
            at: timestamp(SystemTime::now()),
            event,
            rcpt: crate::address::normalize(rcpt).into_owned(),
            message_id: message_id.to_owned(),
        }
    }
}

impl Event {
    /// The event's name and its fields, flat: (`event`, `letter`, `reply`, `retry_at`, `via`),
    /// as the replay folds them and the database stores them.
    pub(crate) fn parts(
        &self,
    ) -> (
        &'static str,
        Option<&str>,
        Option<&str>,
        Option<&str>,
        Option<&str>,
    ) {
        match self {
            Event::Attempt { letter } => ("attempt", letter.as_deref(), None, None, None),
            Event::Sent { reply, via } => ("sent", None, Some(reply), None, via.as_deref()),
            Event::Deferred { reply, retry_at } => {
                ("deferred", None, Some(reply), retry_at.as_deref(), None)
            }
            Event::Failed { reply } => ("failed", None, Some(reply), None, None),
            Event::Withdrawn => ("withdrawn", None, None, None, None),
        }
    }
}
