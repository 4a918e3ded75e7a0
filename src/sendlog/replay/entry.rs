//! One recipient's history as the replay keeps it: [`Entry`] to read, and its packed form, 16
//! bytes, because a list of a million people means a million of them held through a run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ratelimit::unix_seconds;
use crate::sendlog::Status;

/// One recipient's history, folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub status: Status,
    pub attempts: u32,
    pub first_attempt: Option<SystemTime>,
    /// For a deferred message: not before this time.
    pub retry_at: Option<SystemTime>,
}

/// An [`Entry`] in 16 bytes instead of 40: times as unix seconds (0 for none; a u32 lasts
/// until 2106), attempts saturating.
#[derive(Debug, Clone, Copy)]
pub(super) struct Packed {
    pub(super) status: Status,
    /// Where the person stood before the latest attempt: where a withdrawn one puts them back.
    pub(super) before: Status,
    pub(super) attempts: u16,
    pub(super) first_attempt: u32,
    /// When the latest attempt was made: a withdrawn one is taken back out of the history.
    pub(super) last_attempt: u32,
    pub(super) retry_at: u32,
}

impl Packed {
    pub(super) fn unpack(self) -> Entry {
        let time = |seconds: u32| {
            (seconds != 0).then(|| UNIX_EPOCH + Duration::from_secs(u64::from(seconds)))
        };
        Entry {
            status: self.status,
            attempts: u32::from(self.attempts),
            first_attempt: time(self.first_attempt),
            retry_at: time(self.retry_at),
        }
    }
}

/// A time as [`Packed`] holds it: unix seconds, never 0 for a real time (0 is none).
pub(super) fn pack_time(time: Option<SystemTime>) -> u32 {
    time.map_or(0, |t| {
        u32::try_from(unix_seconds(t)).unwrap_or(u32::MAX).max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_packs_into_16_bytes() {
        assert_eq!(std::mem::size_of::<Packed>(), 16);
    }
}
