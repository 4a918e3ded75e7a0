//! The send log: the durable record of every attempt and outcome, and its replay.
//!
//! It is what makes "never twice, never lost" true across crashes, `kill -9` and cron runs:
//! before a message is handed to the server an `attempt` record is written, and after the
//! server's reply its outcome (`sent`, `deferred`, `failed`). On start the log is replayed:
//! sent and failed people are skipped, and an attempt with no outcome is *in doubt* (the process
//! died while the server had the message).
//!
//! The engine sees only the [`SendLog`] trait: a JSON-lines file ([`FileLog`], the default),
//! memory for dry runs ([`MemoryLog`]), and tables in PostgreSQL ([`PgLog`], `--log postgres://…`,
//! which several senders may share: there an attempt is also a claim on its person, which the
//! log may refuse, and the sender holds a [`Lease`] on its claims). Writes go through a
//! [`LogWriter`], which batches the records of concurrent deliveries into one sync each (group
//! commit) so durability does not cost one fsync per message.
//!
//! A log belongs to one campaign: it names it in its first record ([`Header`]), and every
//! backend refuses, when opened, a log that names another ([`check_campaign`]). Which log a
//! campaign has been using is the campaign's own memory ([`CampaignClaim`]).

mod claim;
mod commit;
mod file;
mod lease;
mod lock;
mod postgres;
mod replay;

pub use claim::CampaignClaim;
pub use commit::{Durable, LogWriter, STALL, Written};
pub use file::FileLog;
pub use lease::Lease;
pub use postgres::{Imported, PgLog, PgTarget};
pub use replay::{Entry, Replay};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Classify, ErrorKind};
use crate::ratelimit::{Limits, Permits};

/// The send log could not be read, written or locked.
#[derive(Debug, thiserror::Error)]
pub enum SendLogError {
    #[error("send log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("send log {path}:{line}: not a log record ({message}); the log was edited or damaged")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// Another `send` holds the log: two runs would send twice.
    #[error("send log {path} is locked by another missive run{holder}; try again when it ends")]
    Locked { path: PathBuf, holder: String },
    /// Another `send` of the same campaign runs, perhaps with another log.
    #[error(
        "campaign {campaign} is being sent by another missive run{holder} (lock {path}); \
         try again when it ends"
    )]
    CampaignLocked {
        campaign: String,
        path: PathBuf,
        holder: String,
    },
    /// The file is not a send log (its first line is no record), the lock's place holds
    /// something other than a lock, or the campaign's record of its log is damaged: the file
    /// is left as it was.
    #[error("{path}: {problem}")]
    NotALog { path: PathBuf, problem: String },
    /// The log names another campaign: replaying it would count that campaign's people done.
    #[error(
        "send log {log} belongs to campaign {found}, not to {expected}: it cannot tell who of \
         {expected} was sent. Use {expected}'s own log, or name a new one with --log PATH --new-log"
    )]
    OtherCampaign {
        log: String,
        found: String,
        expected: String,
    },
    /// The campaign has been sending with another log: this one would mail everyone again.
    #[error(
        "campaign {campaign} has been sending with the send log {in_use} (recorded in {state}), \
         not {given}: a different log would mail everyone it does not list again. Use that log \
         (check --log), or pass --new-log if {given} is meant from now on"
    )]
    OtherLog {
        campaign: String,
        in_use: String,
        given: String,
        state: PathBuf,
    },
    /// The log the campaign has been sending with is gone or empty: a new one would mail
    /// everyone again (the story of an operator deleting a log that looked damaged).
    #[error(
        "campaign {campaign} has been sending with the send log {log} (recorded in {state}), \
         but it is {problem}: without it everyone would be mailed again. Put it back (from a \
         backup, or undo the move), or pass --new-log to start over and mail everyone on the list \
         again"
    )]
    LogLost {
        campaign: String,
        log: String,
        problem: &'static str,
        state: PathBuf,
    },
    /// The database the campaign has been sending with holds another row for its id: a
    /// database replaced or restored, or another campaign of the same id, listing nobody this
    /// campaign mailed.
    #[error(
        "campaign {campaign} has been sending with the send log {log} as its row {remembered} \
         there (recorded in {state}), but the database's campaign {campaign} is now the row \
         {found}: that row does not list who this campaign mailed, and everyone else would be \
         mailed again. Point --log at the database the campaign has been using (or restore it), \
         or pass --new-log if this row is meant from now on"
    )]
    OtherCampaignRow {
        campaign: String,
        log: String,
        remembered: String,
        found: String,
        state: PathBuf,
    },
    /// An import would mix two histories of one campaign: the database's and a file's.
    #[error(
        "send log {log} already holds a history of campaign {campaign} that is not the file's \
         ({problem}): importing would mix them and mail people twice or never. Keep sending \
         with the log the campaign has been using"
    )]
    OtherHistory {
        log: String,
        campaign: String,
        problem: String,
    },
    /// A database log's URL that cannot be used (it holds a password, asks for plain text
    /// beyond this machine, or is no PostgreSQL URL). `url` is never shown with a password.
    #[error("send log {url}: {problem}")]
    DatabaseUrl { url: String, problem: String },
    /// The database cannot be reached, or went away: a later run may find it back.
    #[error(
        "send log {log}: the database cannot be reached or went away ({problem}); nothing is \
         lost: run again once it is back"
    )]
    DatabaseUnreachable { log: String, problem: String },
    /// The database refused missive (login, rights, a missing database, a certificate): a
    /// person must act.
    #[error("send log {log}: the database refused missive ({problem}); {remedy}")]
    DatabaseRefused {
        log: String,
        problem: String,
        remedy: &'static str,
    },
    /// Any other answer of the database: a bug of missive's, or of the database.
    #[error("send log {log}: {problem}")]
    DatabaseFailed { log: String, problem: String },
    /// The database holds the send log's tables as a later missive made them: this one would
    /// misread them.
    #[error(
        "send log {log}: the database's send log schema is version {found} (made by missive \
         {made_by}), but this missive ({ours}) knows versions up to {known}: run a missive as \
         recent on this machine"
    )]
    NewerSchema {
        log: String,
        found: i32,
        made_by: String,
        known: i32,
        ours: &'static str,
    },
}

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

/// What every backend checks when it opens `log` for `campaign`: a log naming another campaign
/// is refused. One that names none was written before logs named their campaign: it is
/// accepted (refusing it would strand campaigns under way), with a warning.
pub fn check_campaign(log: &str, named: Option<&str>, campaign: &str) -> Result<(), SendLogError> {
    match named {
        Some(found) if found == campaign => Ok(()),
        Some(found) => Err(SendLogError::OtherCampaign {
            log: log.to_owned(),
            found: found.to_owned(),
            expected: campaign.to_owned(),
        }),
        None => {
            tracing::warn!(
                log,
                campaign,
                "the send log does not name its campaign (it was written by an earlier missive): \
                 make sure it is this campaign's"
            );
            Ok(())
        }
    }
}

impl Classify for SendLogError {
    fn kind(&self) -> ErrorKind {
        match self {
            // The disk, not the campaign.
            SendLogError::Io { .. } => ErrorKind::Failure,
            // A person must look at the log before anyone is mailed on its word.
            SendLogError::Corrupt { .. } => ErrorKind::Invalid,
            // Not a send log, another campaign's, or not the one the campaign has been using:
            // a person must choose.
            SendLogError::NotALog { .. }
            | SendLogError::OtherCampaign { .. }
            | SendLogError::OtherLog { .. }
            | SendLogError::OtherCampaignRow { .. }
            | SendLogError::OtherHistory { .. }
            | SendLogError::LogLost { .. } => ErrorKind::Invalid,
            // The other run ends by itself.
            SendLogError::Locked { .. } | SendLogError::CampaignLocked { .. } => {
                ErrorKind::TryAgain
            }
            // The database comes back by itself, or is restarted by its keepers.
            SendLogError::DatabaseUnreachable { .. } => ErrorKind::TryAgain,
            // A URL, a login or a version to mend before anyone is mailed.
            SendLogError::DatabaseUrl { .. }
            | SendLogError::DatabaseRefused { .. }
            | SendLogError::NewerSchema { .. } => ErrorKind::Invalid,
            SendLogError::DatabaseFailed { .. } => ErrorKind::Failure,
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
/// Where a recipient stands according to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Sent,
    Failed,
    Deferred,
    /// An attempt with no outcome: the server may or may not have the message.
    InDoubt,
    /// Every attempt was withdrawn: as if never attempted.
    Pending,
}

impl Status {
    /// Sent and failed are final: nothing more will be tried.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Sent | Status::Failed)
    }
}

/// A durable record of attempts and outcomes. Each backend is opened for one campaign and
/// replays itself then: a new log is made to name its campaign ([`Header`]), an existing one
/// that names another is refused with [`check_campaign`], and a store that is not a send log
/// is refused ([`SendLogError::NotALog`]) and left as it was.
pub trait SendLog: Send {
    /// Appends `records` in order. Returns once all of them are durable: a crash after this call
    /// cannot lose them. A log shared by several senders may refuse an `attempt` whose person
    /// another sender holds (the attempt is the claim): it then writes nothing for it and
    /// returns its position in `records`, in order. A log of one sender refuses none.
    fn append(&mut self, records: &[Record]) -> Result<Vec<usize>, SendLogError>;

    /// The lease this sender holds on its claims, for a log shared by several senders: once it
    /// is no longer live, no message may be handed over.
    fn lease(&self) -> Option<Lease> {
        None
    }

    /// For a log shared by several senders, the permits through which it keeps `limits` for
    /// the campaign as a whole (granted to this sender a few at a time); `None` where this
    /// sender's own pace is the campaign's.
    fn share_pace(&mut self, limits: &Limits) -> Option<Arc<Permits>> {
        let _ = limits;
        None
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

/// Keeps records in memory only: for dry runs, which must never touch the real log.
#[derive(Debug, Default)]
pub struct MemoryLog {
    pub records: Vec<Record>,
}

impl SendLog for MemoryLog {
    fn append(&mut self, records: &[Record]) -> Result<Vec<usize>, SendLogError> {
        self.records.extend_from_slice(records);
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `sent` record, for tests here and in the backends.
    pub(super) fn sent(rcpt: &str) -> Record {
        Record::new(
            Event::Sent {
                reply: "250 ok".into(),
                via: None,
            },
            rcpt,
            "<id@x>",
        )
    }
}
