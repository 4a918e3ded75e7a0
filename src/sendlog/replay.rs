//! The send log replayed: each recipient's latest status, folded from the log's lines in
//! order, plus what `status` and the quotas need (the letters sent, failures by reply, recent
//! attempts). A million entries are held through a run, so they are packed, and people sent
//! or failed are kept as a bare status.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::{Header, Record, Status, parse_timestamp};
use crate::address::RecipientKey;
use crate::keymap::KeyMap;
use crate::ratelimit::{HISTORY, History, unix_seconds};

mod entry;
mod person;

pub use entry::Entry;
use entry::{Packed, pack_time};
pub(crate) use person::{Loading, Person};

/// A log line as read back: flat, and borrowed from the line's bytes where it can be, so that
/// replaying millions of records allocates next to nothing. (The written form, [`Record`], is
/// a tagged enum, which serde can only read by buffering every field first.)
#[derive(Debug, Deserialize)]
pub(crate) struct Line<'a> {
    #[serde(borrow)]
    pub(crate) at: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) event: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) rcpt: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) letter: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) reply: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) retry_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) via: Option<Cow<'a, str>>,
}

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
            history: History::new(),
            history_since: unix_seconds(SystemTime::now() - HISTORY),
            failed_reasons: BTreeMap::new(),
            sent_via_fallback: 0,
        }
    }
}

impl Replay {
    /// Folds one record into the state.
    pub fn apply(&mut self, record: &Record) {
        let (event, letter, reply, retry_at, via) = record.event.parts();
        let line = Line {
            at: record.at.as_str().into(),
            event: event.into(),
            rcpt: record.rcpt.as_str().into(),
            letter: letter.map(Into::into),
            reply: reply.map(Into::into),
            retry_at: retry_at.map(Into::into),
            via: via.map(Into::into),
        };
        self.fold(&line).expect("a record's event is always known");
    }

    /// Folds one line as read from a log; `Err` names an unknown event.
    fn fold(&mut self, line: &Line<'_>) -> Result<(), String> {
        let key = RecipientKey::of(&line.rcpt);
        // A final outcome is final (this only matters for records folded after `finish`).
        if self.finals.get(&key).is_some() {
            return Ok(());
        }
        let entry = self.entries.entry_or(
            key,
            Packed {
                status: Status::InDoubt,
                before: Status::Pending,
                attempts: 0,
                first_attempt: 0,
                last_attempt: 0,
                retry_at: 0,
            },
        );
        // A final outcome is final: a later record (an in-doubt resend) cannot undo "sent".
        if entry.status.is_final() {
            return Ok(());
        }
        entry.retry_at = 0;
        entry.status = match &*line.event {
            "attempt" => {
                entry.before = if entry.attempts == 0 {
                    Status::Pending
                } else {
                    entry.status
                };
                entry.attempts = entry.attempts.saturating_add(1);
                let at = parse_timestamp(&line.at);
                if entry.first_attempt == 0 {
                    entry.first_attempt = pack_time(at);
                }
                entry.last_attempt = pack_time(at);
                if let Some(second) = at.map(unix_seconds)
                    && second >= self.history_since
                {
                    *self.history.entry(second).or_default() += 1;
                }
                if let Some(letter) = &line.letter
                    && !self.letters.contains(&**letter)
                {
                    self.letters.insert(letter.to_string());
                }
                Status::InDoubt
            }
            "sent" => {
                self.sent_via_fallback += u64::from(line.via.is_some());
                Status::Sent
            }
            "deferred" => {
                entry.retry_at = pack_time(line.retry_at.as_deref().and_then(parse_timestamp));
                Status::Deferred
            }
            "failed" => {
                let reply = line.reply.as_deref().unwrap_or_default();
                *self.failed_reasons.entry(reason(reply)).or_default() += 1;
                Status::Failed
            }
            // Back to where the person stood before the attempt: not yet attempted, deferred
            // (and due, since it was being retried), or in doubt (an in-doubt message queued
            // again and withdrawn is still in doubt, whatever `--in-doubt` says next time).
            "withdrawn" => {
                entry.attempts = entry.attempts.saturating_sub(1);
                let second = u64::from(entry.last_attempt);
                if let Some(count) = self.history.get_mut(&second) {
                    *count = count.saturating_sub(1);
                }
                if entry.attempts == 0 {
                    entry.first_attempt = 0;
                    Status::Pending
                } else {
                    entry.before
                }
            }
            other => return Err(format!("unknown event {other:?}")),
        };
        // Most people are attempted and sent within a few lines of the log: their entry moves
        // to the compact set of final ones before it ever reaches the sorted array.
        let status = entry.status;
        if status.is_final() && self.entries.take_fresh(&key).is_some() {
            self.finals.insert(key, status);
        }
        Ok(())
    }

    /// Called once the whole log is folded in: the entries will only be read from now on.
    pub(crate) fn finish(&mut self) {
        let entries = std::mem::replace(&mut self.entries, KeyMap::new());
        let final_status = |packed: &Packed| packed.status.is_final().then_some(packed.status);
        let (finals, open) = entries.split(final_status, |packed| packed);
        // People whose outcome came long after their attempt (a retry, a resend): few.
        for (key, status) in finals.iter() {
            self.finals.insert(key, status);
        }
        self.finals.compact();
        self.entries = open;
    }

    /// Parses the first line of a log file: the [`Header`] naming its campaign or, in a log
    /// written before headers, a record. `Err` when it is neither.
    pub(crate) fn apply_first_line(&mut self, bytes: &[u8]) -> Result<(), String> {
        match serde_json::from_slice::<Header>(bytes) {
            Ok(header) => {
                self.campaign = Some(header.campaign);
                Ok(())
            }
            Err(_) => self.apply_line(bytes),
        }
    }

    /// Names the campaign of a log that keeps it elsewhere than in a first line.
    pub(crate) fn set_campaign(&mut self, campaign: &str) {
        self.campaign = Some(campaign.to_owned());
    }

    /// The campaign the log names, if it names one.
    pub fn campaign(&self) -> Option<&str> {
        self.campaign.as_deref()
    }

    /// Parses one line of a log file and folds it in.
    pub(crate) fn apply_line(&mut self, bytes: &[u8]) -> Result<(), String> {
        let line: Line<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        self.fold(&line)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sendlog::Event;
    use crate::sendlog::tests::sent;

    #[test]
    fn replay_tracks_latest_status_and_keeps_final_outcomes() {
        let mut replay = Replay::default();
        let key = RecipientKey::of("a@example.com");
        replay.apply(&Record::new(Event::attempt("L1"), "A@example.com", "<i>"));
        assert_eq!(replay.get(&key).unwrap().status, Status::InDoubt);
        let later = "2030-01-01T00:00:00Z".to_owned();
        replay.apply(&Record::new(
            Event::Deferred {
                reply: "451".into(),
                retry_at: Some(later.clone()),
            },
            "a@example.com",
            "<i>",
        ));
        let entry = replay.get(&key).unwrap();
        assert_eq!(entry.status, Status::Deferred);
        assert_eq!(entry.retry_at, humantime::parse_rfc3339(&later).ok());
        assert!(entry.first_attempt.is_some());
        replay.apply(&Record::new(Event::attempt("L2"), "a@example.com", "<i>"));
        replay.apply(&sent("a@example.com"));
        replay.apply(&Record::new(Event::attempt("L2"), "a@example.com", "<i>"));
        let entry = replay.get(&key).unwrap();
        // A final entry keeps its status only.
        assert_eq!(entry.status, Status::Sent);
        assert_eq!(replay.letters().iter().collect::<Vec<_>>(), ["L1", "L2"]);
    }

    #[test]
    fn lines_are_read_back_with_escapes_and_unknown_events_are_refused() {
        let mut replay = Replay::default();
        let attempt = r#"{"at":"2026-01-01T00:00:00Z","event":"attempt","rcpt":"\u00e9ve@example.com","message_id":"<i>"}"#;
        let failed = r#"{"at":"2026-01-01T00:00:01Z","event":"failed","reply":"550 5.1.1 \"\u00e9ve\" unknown","rcpt":"\u00c9VE@example.com","message_id":"<i>"}"#;
        replay.apply_line(attempt.as_bytes()).unwrap();
        replay.apply_line(failed.as_bytes()).unwrap();
        let entry = replay.get(&RecipientKey::of("éve@example.com")).unwrap();
        assert_eq!(entry.status, Status::Failed);
        assert_eq!(replay.failed_reasons(), [("550 5.1.1", 1)]);
        let odd = r#"{"at":"2026-01-01T00:00:00Z","event":"bounced","rcpt":"a@example.com"}"#;
        assert!(
            replay
                .apply_line(odd.as_bytes())
                .unwrap_err()
                .contains("bounced")
        );
    }

    #[test]
    fn a_withdrawn_attempt_is_as_if_never_made() {
        let mut replay = Replay::default();
        let withdrawn = |rcpt| Record::new(Event::Withdrawn, rcpt, "<i>");
        replay.apply(&Record::new(Event::attempt("L"), "a@example.com", "<i>"));
        replay.apply(&withdrawn("a@example.com"));
        assert_eq!(replay.get(&RecipientKey::of("a@example.com")), None);

        let deferred = Event::Deferred {
            reply: "451".into(),
            retry_at: Some("2030-01-01T00:00:00Z".into()),
        };
        replay.apply(&Record::new(Event::attempt("L"), "b@example.com", "<i>"));
        replay.apply(&Record::new(deferred, "b@example.com", "<i>"));
        replay.apply(&Record::new(Event::attempt("L"), "b@example.com", "<i>"));
        replay.apply(&withdrawn("b@example.com"));
        let entry = replay.get(&RecipientKey::of("b@example.com")).unwrap();
        assert_eq!(
            (entry.status, entry.attempts, entry.retry_at),
            (Status::Deferred, 1, None)
        );
        // In doubt, queued again, withdrawn: still in doubt.
        replay.apply(&Record::new(Event::attempt("L"), "d@example.com", "<i>"));
        replay.apply(&Record::new(Event::attempt("L"), "d@example.com", "<i>"));
        replay.apply(&withdrawn("d@example.com"));
        let entry = replay.get(&RecipientKey::of("d@example.com")).unwrap();
        assert_eq!((entry.status, entry.attempts), (Status::InDoubt, 1));
        let text = serde_json::to_string(&withdrawn("c@example.com")).unwrap();
        assert!(text.contains(r#""event":"withdrawn""#), "{text}");
    }
}
