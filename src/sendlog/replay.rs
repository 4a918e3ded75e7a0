//! The send log replayed: each recipient's latest status, folded from the log's lines in
//! order, plus what `status` and the quotas need (the letters sent, failures by reply, recent
//! attempts). A million entries are held through a run, so they are packed, and people sent
//! or failed are kept as a bare status.
//!
//! A replay is built one of two ways: folded from every record of the log (`fold`, for a file),
//! or from each person's state as a database keeps it (`person`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Status;
use crate::address::RecipientKey;
use crate::keymap::KeyMap;
use crate::ratelimit::{HISTORY, History, unix_seconds};

mod entry;
mod fold;
mod person;

pub use entry::Entry;
use entry::Packed;
pub(crate) use person::{Loading, Person};

/// The log replayed: each recipient's latest status, the letters sent so far, and the recent
/// attempts that quotas count.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The campaign the log names in its first line; `None` in a log written before logs did.
    campaign: Option<String>,
    /// Packed: a list of a million people means a million entries held through the run.
    /// While the log is read, everyone; once it is read, only those without a final outcome.
    entries: KeyMap<Packed>,
    /// Once the log is read, the people sent or failed: a status is all a run needs of them,
    /// and they are nearly everyone in a long campaign's log.
    finals: KeyMap<Status>,
    letters: BTreeSet<String>,
    /// The letters other senders of a shared log are sending now (their attempts may not
    /// show yet).
    sending_elsewhere: BTreeSet<String>,
    /// Attempts a second since `HISTORY` before the replay.
    history: History,
    history_since: u64,
    /// Permanent failures, grouped by reply code (`550 5.1.1`).
    failed_reasons: BTreeMap<String, u64>,
    /// Messages the fallback relay took.
    sent_via_fallback: u64,
}

impl Default for Replay {
    fn default() -> Self {
        Replay {
            campaign: None,
            entries: KeyMap::new(),
            finals: KeyMap::new(),
            letters: BTreeSet::new(),
            sending_elsewhere: BTreeSet::new(),
            history: History::new(),
            history_since: unix_seconds(SystemTime::now() - HISTORY),
            failed_reasons: BTreeMap::new(),
            sent_via_fallback: 0,
        }
    }
}

impl Replay {
    /// Names the campaign of a log that keeps it elsewhere than in a first line.
    pub(crate) fn set_campaign(&mut self, campaign: &str) {
        self.campaign = Some(campaign.to_owned());
    }

    /// The campaign the log names, if it names one.
    pub fn campaign(&self) -> Option<&str> {
        self.campaign.as_deref()
    }

    /// Attempts a second over the last day, for quotas and `status`.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Permanent failures by reply code, most frequent first.
    pub fn failed_reasons(&self) -> Vec<(&str, u64)> {
        let mut reasons: Vec<(&str, u64)> = self
            .failed_reasons
            .iter()
            .map(|(reason, n)| (reason.as_str(), *n))
            .collect();
        reasons.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        reasons
    }

    pub fn sent_via_fallback(&self) -> u64 {
        self.sent_via_fallback
    }

    /// The earliest retry time of a deferred message.
    pub fn next_retry(&self) -> Option<SystemTime> {
        self.entries
            .values()
            .filter(|e| e.status == Status::Deferred && e.retry_at != 0)
            .map(|e| e.retry_at)
            .min()
            .map(|seconds| UNIX_EPOCH + Duration::from_secs(u64::from(seconds)))
    }

    /// The fingerprints of every letter the log shows attempts of.
    pub fn letters(&self) -> &BTreeSet<String> {
        &self.letters
    }

    /// The fingerprints of the letters other senders of a shared log are sending now.
    pub fn sending_elsewhere(&self) -> &BTreeSet<String> {
        &self.sending_elsewhere
    }

    pub(crate) fn set_sending_elsewhere(&mut self, letters: BTreeSet<String>) {
        self.sending_elsewhere = letters;
    }

    /// Where `key` stands. For people sent or failed, the status is all that is kept.
    pub fn get(&self, key: &RecipientKey) -> Option<Entry> {
        if let Some(status) = self.finals.get(key) {
            return Some(Entry {
                status,
                attempts: 0,
                first_attempt: None,
                retry_at: None,
            });
        }
        self.entries
            .get(key)
            .map(Packed::unpack)
            .filter(|entry| entry.status != Status::Pending)
    }

    /// How many people the log lists as sent, failed, deferred, in doubt, and attempted but
    /// every attempt withdrawn (pending): what a moved log must still say.
    pub fn counts(&self) -> [u64; 5] {
        let mut counts = [0; 5];
        let statuses = self
            .finals
            .values()
            .chain(self.entries.values().map(|p| p.status));
        for status in statuses {
            let at = match status {
                Status::Sent => 0,
                Status::Failed => 1,
                Status::Deferred => 2,
                Status::InDoubt => 3,
                Status::Pending => 4,
            };
            counts[at] += 1;
        }
        counts
    }

    pub fn len(&self) -> usize {
        self.finals.len() + self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a failure is grouped under: the reply code and enhanced status code (`550 5.1.1`), or
/// the first words of a reply that has none (`gave up after 8 attempts`).
fn reason(reply: &str) -> String {
    let codes: Vec<&str> = reply
        .split_whitespace()
        .take(2)
        .take_while(|word| word.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .collect();
    if codes.is_empty() {
        reply
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        codes.join(" ")
    }
}
