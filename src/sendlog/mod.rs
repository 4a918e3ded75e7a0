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
mod error;
mod file;
mod lease;
mod lock;
mod postgres;
mod record;
mod replay;

pub use claim::CampaignClaim;
pub use commit::{Durable, LogWriter, STALL, Written};
pub use error::SendLogError;
pub use file::FileLog;
pub use lease::Lease;
pub use postgres::{Imported, PgLog, PgTarget};
pub(crate) use record::parse_timestamp;
pub use record::{Event, Header, HeaderEvent, Record, timestamp};
pub use replay::{Entry, Replay};

use std::sync::Arc;

use crate::ratelimit::{Limits, Permits};

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

    /// How long the writer lets pass between the end of one write and the start of the next,
    /// hurried or not, gathering the records meanwhile: for a log whose every write costs far
    /// more than its records (a database's commit), where writes as close together as a file's
    /// syncs would spend the machine on commits. A record waits at most this much longer to be
    /// durable; a write after a pause this long starts at once.
    fn spacing(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// How long a writer that has been idle waits, once a record comes, for others to share its
    /// write, unless a caller hurries it: for a log whose every write costs far more than its
    /// records. At a relay that takes its time, a pool's connections get their replies a few
    /// milliseconds apart, and each outcome would otherwise be a write of its own. An outcome
    /// waits that much longer to be durable (a crash meanwhile leaves its message in doubt);
    /// attempts are written ahead of their messages, so none is late for it.
    fn idle_wait(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

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

    /// For a log shared by several senders: how many of the campaign's people have no final
    /// outcome in it yet (held by a sender at work, deferred, or put back). A run that met
    /// people another sender held asks once it ends: none left means the others saw them
    /// through, and the campaign is done. `None` for a log of one sender, whose run knows that
    /// itself.
    fn unsettled(&mut self) -> Result<Option<u64>, SendLogError> {
        Ok(None)
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
