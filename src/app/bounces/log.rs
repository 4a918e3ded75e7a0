//! The bounce log: `<campaign id>.bounces.jsonl` beside the campaign file, one JSON object a
//! line for every decision `missive bounces` made (a recipient of a message, or a message that
//! named no one). It is what makes a second read of the same message change nothing (a message
//! is known by its `Message-ID`, or by the hash of its bytes), and what soft bounces are counted
//! from.
//!
//! Several `bounces` may run at once (a Postfix pipe and a cron job over the Maildir): each holds
//! an exclusive lock on the log from reading it to appending to it, so two runs never decide the
//! same message twice or miscount a soft bounce, and each append is synced before the lock goes.
//! A line cut short by a crash is skipped on reading and never written after.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::address::RecipientKey;
use crate::bounce::{FoundBy, Kind};

/// One line of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    /// When it was read (RFC 3339).
    pub at: String,
    /// The file, `file#n` of an mbox, or `-` (standard input).
    pub source: String,
    /// The bounce's `Message-ID`, or `sha256:…` of its bytes.
    pub bounce: String,
    pub recipient: Option<String>,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub policy: bool,
    pub status: Option<String>,
    pub action: Option<String>,
    pub reason: String,
    pub diagnostic: Option<String>,
    /// The bounce's own `Date` (RFC 3339), when it has one: soft bounces are counted by it.
    pub date: Option<String>,
    #[serde(default, skip_deserializing)]
    pub found_by: Option<FoundBy>,
    /// For a soft bounce: how many of this person's, within the window, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_count: Option<u32>,
    /// The suppression list the recipient went to: `bounced` or `complained`.
    pub suppressed: Option<String>,
}

/// What the log says of the messages read before.
#[derive(Debug, Default)]
pub(super) struct History {
    /// For each message decided, its records' kinds and recipients.
    seen: HashMap<String, Vec<(Kind, Option<String>)>>,
    /// The dates (Unix seconds) of each person's soft bounces.
    soft: HashMap<RecipientKey, Vec<i64>>,
}

impl History {
    fn note(&mut self, record: &Record) {
        self.seen
            .entry(record.bounce.clone())
            .or_default()
            .push((record.kind, record.recipient.clone()));
        if record.kind == Kind::Soft
            && !record.policy
            && let Some(recipient) = &record.recipient
        {
            let date = record
                .date
                .as_deref()
                .or(Some(&record.at))
                .and_then(seconds);
            if let Some(date) = date {
                self.soft
                    .entry(RecipientKey::of(recipient))
                    .or_default()
                    .push(date);
            }
        }
    }

    /// What was decided about `bounce`, when it was read before.
    pub fn seen(&self, bounce: &str) -> Option<&[(Kind, Option<String>)]> {
        self.seen.get(bounce).map(Vec::as_slice)
    }

    /// Counts a soft bounce of `recipient` dated `date`, and returns how many of theirs fall
    /// within `window_secs` before it, this one included.
    pub fn count_soft(&mut self, recipient: &str, date: i64, window_secs: i64) -> u32 {
        let dates = self.soft.entry(RecipientKey::of(recipient)).or_default();
        dates.push(date);
        let within = dates
            .iter()
            .filter(|&&d| d <= date && d > date - window_secs)
            .count();
        u32::try_from(within).unwrap_or(u32::MAX)
    }

    /// Remembers what this run decides, so the same message twice in one run counts once.
    pub fn remember(&mut self, records: &[Record]) {
        for record in records {
            self.seen
                .entry(record.bounce.clone())
                .or_default()
                .push((record.kind, record.recipient.clone()));
        }
    }
}

/// The log, locked for this run.
pub(super) struct BounceLog {
    path: PathBuf,
    file: File,
    /// The file does not end with a newline: a line a crash cut short.
    torn: bool,
}

impl BounceLog {
    /// Opens (creating) and locks the log at `path`, and reads what it holds. The lock is held
    /// until the log is dropped.
    pub fn open(path: &Path) -> anyhow::Result<(BounceLog, History)> {
        let context = || format!("{}: cannot open the bounce log", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(context)?;
        file.lock().with_context(context)?;
        let mut text = Vec::new();
        file.seek(SeekFrom::Start(0)).with_context(context)?;
        file.read_to_end(&mut text).with_context(context)?;
        let mut history = History::default();
        let complete = text
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        for line in text[..complete].split(|&b| b == b'\n') {
            // A line that is not a record (a person's edit) decides nothing.
            if let Ok(record) = serde_json::from_slice::<Record>(line) {
                history.note(&record);
            }
        }
        let log = BounceLog {
            path: path.to_owned(),
            file,
            torn: complete < text.len(),
        };
        Ok((log, history))
    }

    /// Appends `records` and syncs them to disk.
    pub fn append(&mut self, records: &[Record]) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut text = Vec::new();
        if self.torn {
            text.push(b'\n');
        }
        for record in records {
            serde_json::to_writer(&mut text, record).expect("a record serializes");
            text.push(b'\n');
        }
        let context = || format!("{}: cannot write the bounce log", self.path.display());
        self.file.write_all(&text).with_context(context)?;
        self.file.sync_data().with_context(context)?;
        self.torn = false;
        Ok(())
    }
}

/// Seconds since the Unix epoch of an RFC 3339 time.
fn seconds(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339(text).ok()?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_secs()).ok()
}

/// The RFC 3339 form of `seconds` since the Unix epoch (none before it).
pub(super) fn rfc3339(seconds: i64) -> Option<String> {
    let seconds = u64::try_from(seconds).ok()?;
    let time = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(seconds))?;
    Some(humantime::format_rfc3339_seconds(time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_bounces_count_within_the_window_before_each() {
        let mut history = History::default();
        let day = 86_400;
        let window = 30 * day;
        assert_eq!(history.count_soft("a@example.com", 100 * day, window), 1);
        assert_eq!(history.count_soft("A@example.com", 110 * day, window), 2);
        // 35 days after the first: it has left the window, the second has not.
        assert_eq!(history.count_soft("a@example.com", 135 * day, window), 2);
        assert_eq!(history.count_soft("b@example.com", 140 * day, window), 1);
    }

    #[test]
    fn times_go_both_ways() {
        let text = rfc3339(1_795_957_500).unwrap();
        assert_eq!(text, "2026-11-29T13:05:00Z");
        assert_eq!(seconds(&text), Some(1_795_957_500));
        assert_eq!(rfc3339(-1), None);
    }
}
