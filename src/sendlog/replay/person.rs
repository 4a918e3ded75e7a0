//! A replay built from each person's state as a database log keeps it (one row a person),
//! rather than from the whole history of records: a resumed campaign of a million people
//! starts from a million rows, not from every attempt and outcome ever written.

use std::time::SystemTime;

use super::entry::{Packed, pack_time};
use super::{Replay, reason};
use crate::address::RecipientKey;
use crate::sendlog::Status;

/// One person's state: their latest status and what the replay keeps of their history.
#[derive(Debug, Clone)]
pub(crate) struct Person<'a> {
    pub(crate) rcpt: &'a str,
    pub(crate) status: Status,
    pub(crate) attempts: u32,
    pub(crate) first_attempt: Option<SystemTime>,
    pub(crate) last_attempt: Option<SystemTime>,
    pub(crate) retry_at: Option<SystemTime>,
    /// The letter of the latest attempt.
    pub(crate) letter: Option<&'a str>,
    /// The latest reply (a failure's, for `status`'s reasons).
    pub(crate) reply: Option<&'a str>,
    pub(crate) via_fallback: bool,
}

/// People sent or failed, gathered while a database log is read and taken into the replay's
/// finals a batch at a time ([`KeyMap::extend_new`](crate::keymap::KeyMap::extend_new)): one
/// by one, each was a look into a sorted million, most of a resumed campaign's start-up.
#[derive(Debug, Default)]
pub(crate) struct Loading {
    finals: Vec<(RecipientKey, Status)>,
}

/// People gathered before a batch is taken in: large enough that the batches are few (each
/// walks the finals so far), small enough to cost two megabytes.
const LOADING_BATCH: usize = 1 << 17;

impl Replay {
    /// Counts `attempts` made in the unix second `second`, less `withdrawn` withdrawn then
    /// (the quotas' history, which a person's state does not keep).
    pub(crate) fn add_attempts(&mut self, second: u64, attempts: u32, withdrawn: u32) {
        let net = attempts.saturating_sub(withdrawn);
        if second >= self.history_since && attempts > 0 {
            *self.history.entry(second).or_default() += net;
        }
    }

    /// Takes one person's state as it stands (the history of attempts comes apart: see
    /// [`Replay::add_attempts`]). Those sent or failed join the finals in batches, through
    /// `loading`: the replay knows them once [`Replay::loaded`] is called.
    pub(crate) fn apply_person(&mut self, person: &Person<'_>, loading: &mut Loading) {
        let key = RecipientKey::of(person.rcpt);
        if let Some(letter) = person.letter
            && !self.letters.contains(letter)
        {
            self.letters.insert(letter.to_owned());
        }
        match person.status {
            Status::Sent | Status::Failed => {
                if person.status == Status::Failed {
                    let reply = person.reply.unwrap_or_default();
                    *self.failed_reasons.entry(reason(reply)).or_default() += 1;
                }
                self.sent_via_fallback += u64::from(person.via_fallback);
                loading.finals.push((key, person.status));
                if loading.finals.len() >= LOADING_BATCH {
                    self.loaded(loading);
                }
            }
            // Every attempt withdrawn: known, but as if never attempted.
            status => {
                let packed = Packed {
                    status,
                    before: Status::Pending,
                    attempts: u16::try_from(person.attempts).unwrap_or(u16::MAX),
                    first_attempt: pack_time(person.first_attempt),
                    last_attempt: pack_time(person.last_attempt),
                    retry_at: pack_time(person.retry_at),
                };
                *self.entries.entry_or(key, packed) = packed;
            }
        }
    }

    /// Takes in the people `loading` gathered.
    pub(crate) fn loaded(&mut self, loading: &mut Loading) {
        let batch = std::mem::take(&mut loading.finals);
        self.finals.extend_new(batch);
    }
}
