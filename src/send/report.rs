//! What a run tells its caller: how many messages came to which outcome, live while it runs
//! ([`Progress`], which a progress bar reads) and once it is over ([`RunReport`]), and why it
//! stopped before the end of the list ([`Stopped`]).
//!
//! Each outcome is counted once, in [`Progress`], when it is durable (a give-up when it is
//! written): the report takes its counts from there, so the bar and the report cannot disagree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::error::{Classify, ErrorKind};
use crate::ratelimit::QuotaSpent;
use crate::recipients::RowError;
use crate::smtp::RelayName;

/// Why a run stopped before the end of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    MaxMessages,
    MaxDuration,
    /// The campaign's `[window]` closed: the rest waits for its next opening.
    WindowClosed,
    /// A quota is spent until later than the run may wait.
    Quota(QuotaSpent),
    Unreachable(String),
    /// A relay refused the login (5xx), or offers none: a person must
    /// mend the username or the password.
    LoginRefused {
        relay: RelayName,
        why: String,
    },
    /// A relay's certificate cannot be trusted, and no other relay carries the run: a person
    /// must mend the relay's url or `ca_file` (or the relay its certificate).
    Untrusted {
        relay: RelayName,
        why: String,
    },
    /// The caller's shutdown resolved (SIGINT or SIGTERM, in the binary): messages in hand
    /// were finished and logged, no new one was taken.
    Interrupted,
    /// The send log could not be written; the run's error says why.
    LogFailed,
    /// The lease on this sender's claims in a shared log could not be renewed in time (the
    /// database is gone or cut off): the others may take its people over, so it stopped.
    LeaseLost,
}

impl Classify for Stopped {
    fn kind(&self) -> ErrorKind {
        match self {
            // Waiting will not mend these: a person must.
            Stopped::LoginRefused { .. } | Stopped::Untrusted { .. } => ErrorKind::Invalid,
            Stopped::MaxMessages
            | Stopped::MaxDuration
            | Stopped::WindowClosed
            | Stopped::Quota(_)
            | Stopped::Unreachable(_)
            | Stopped::LeaseLost
            | Stopped::Interrupted => ErrorKind::TryAgain,
            Stopped::LogFailed => ErrorKind::Failure,
        }
    }
}

/// How one row ended, as far as this run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Sent,
    Failed,
    Deferred,
    /// Handed over with no reply after DATA: in doubt until a later run.
    Unanswered,
    /// Passed over: done before this run, rejected, suppressed, or not due.
    Skipped,
    /// Not mailed because `send_before` has passed: never attempted, or withdrawn.
    Expired,
    /// Not mailed by this sender: another one sharing the log holds the person (the log
    /// refused this one's attempt before any DATA).
    Taken,
}

/// What became of the rows so far, updated as outcomes come in: a progress bar reads it
/// live, and the run's report takes its [`Counts`] at the end. One per run.
#[derive(Debug, Default)]
pub struct Progress {
    sent: AtomicU64,
    failed: AtomicU64,
    deferred: AtomicU64,
    unanswered: AtomicU64,
    skipped: AtomicU64,
    expired: AtomicU64,
    taken: AtomicU64,
    resent_in_doubt: AtomicU64,
    via_fallback: AtomicU64,
}

impl Progress {
    /// Counts one row's outcome.
    pub(super) fn add(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Sent => &self.sent,
            Outcome::Failed => &self.failed,
            Outcome::Deferred => &self.deferred,
            Outcome::Unanswered => &self.unanswered,
            Outcome::Skipped => &self.skipped,
            Outcome::Expired => &self.expired,
            Outcome::Taken => &self.taken,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a message this run handed over: its outcome, whether an earlier run had left it
    /// in doubt, and whether the fallback relay carried it (counted only once sent).
    pub(super) fn settle(&self, outcome: Outcome, was_in_doubt: bool, via_fallback: bool) {
        self.add(outcome);
        let resent = was_in_doubt && outcome != Outcome::Taken;
        self.resent_in_doubt
            .fetch_add(u64::from(resent), Ordering::Relaxed);
        let via_fallback = via_fallback && outcome == Outcome::Sent;
        self.via_fallback
            .fetch_add(u64::from(via_fallback), Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            sent: load(&self.sent),
            failed: load(&self.failed),
            deferred: load(&self.deferred),
            unanswered: load(&self.unanswered),
            skipped: load(&self.skipped),
            expired: load(&self.expired),
            taken: load(&self.taken),
            resent_in_doubt: load(&self.resent_in_doubt),
            via_fallback: load(&self.via_fallback),
        }
    }
}

/// The counts of [`Progress`] at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub failed: u64,
    pub deferred: u64,
    /// Handed over this run with no reply: in doubt until the next run.
    pub unanswered: u64,
    /// Rows passed over: done before this run, rejected, suppressed, or not due.
    pub skipped: u64,
    /// Not mailed because the campaign's `send_before` has passed.
    pub expired: u64,
    /// Not mailed here: another sender sharing the log held the person.
    pub taken: u64,
    /// In-doubt messages from an earlier run that this run sent again.
    pub resent_in_doubt: u64,
    /// Messages the fallback relay took.
    pub via_fallback: u64,
}

impl Counts {
    /// Rows dealt with so far, whatever became of them.
    pub fn done(&self) -> u64 {
        self.sent
            + self.failed
            + self.deferred
            + self.unanswered
            + self.skipped
            + self.expired
            + self.taken
    }
}

/// What one run did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// What became of the messages, as [`Progress`] counted them.
    pub counts: Counts,
    /// In-doubt messages from an earlier run left alone (`--in-doubt skip`).
    pub skipped_in_doubt: u64,
    /// People the log already had a final outcome for.
    pub already_done: u64,
    /// Deferred by an earlier run, and not yet due.
    pub not_due: u64,
    /// The earliest time one of those is due.
    pub next_due: Option<SystemTime>,
    pub rejected: Vec<RowError>,
    /// People on a suppression list: not mailed.
    pub suppressed: u64,
    /// People whose own window (`time_zone_column`) was closed when their row came: a later
    /// run's.
    pub waiting_for_window: u64,
    /// The earliest time one of those windows opens.
    pub window_opens: Option<SystemTime>,
    /// A relay whose certificate could not be trusted, set aside while the other carried the
    /// run, and why: the run may end well, but a person must mend it before the next one.
    pub set_aside: Option<(RelayName, String)>,
    pub stopped: Option<Stopped>,
    /// For a log shared by several senders, once a run that met people another sender held
    /// has ended: how many of the campaign's people the log still had without a final outcome
    /// ([`crate::sendlog::SendLog::unsettled`]). `Some(0)`: the others saw theirs through.
    pub unsettled_in_log: Option<u64>,
}

impl RunReport {
    /// True when every recipient now has a final outcome: nothing for a later run to do. People
    /// another sender held count once the log says the campaign has no one left unsettled.
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none()
            && self.counts.deferred
                + self.not_due
                + self.counts.unanswered
                + self.held_elsewhere()
                + self.waiting_for_window
                == 0
    }

    /// People another sender held, unless the log has since said everyone is through.
    pub fn held_elsewhere(&self) -> u64 {
        match self.unsettled_in_log {
            Some(0) => 0,
            _ => self.counts.taken,
        }
    }
}

/// Why the run stopped, from the budget the producer reached (`--max-messages`,
/// `--max-duration`) and the run's halt (a worker's reason, the deadline, or the caller's
/// shutdown). What stopped a worker says more than the budget reached meanwhile: a wrong
/// password must not pass for `--max-messages reached`. A shutdown after the budget was
/// reached did not stop the run: the budget did.
pub(super) fn why_stopped(budget: Option<Stopped>, halted: Option<Stopped>) -> Option<Stopped> {
    match (budget, halted) {
        // A login refused, a certificate that cannot be trusted: a person must act.
        (_, Some(halted)) if halted.kind() == ErrorKind::Invalid => Some(halted),
        (Some(budget), Some(Stopped::Interrupted)) => Some(budget),
        (_, Some(halted)) => Some(halted),
        (budget, None) => budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_what_stopped_the_run() {
        let refused = Stopped::LoginRefused {
            relay: RelayName::Primary,
            why: "535 5.7.8 bad credentials".into(),
        };
        let unreachable = Stopped::Unreachable("connection refused".into());
        for (budget, halted, stopped) in [
            (None, None, None),
            (Some(Stopped::MaxMessages), None, Some(Stopped::MaxMessages)),
            (None, Some(Stopped::Interrupted), Some(Stopped::Interrupted)),
            (None, Some(Stopped::MaxDuration), Some(Stopped::MaxDuration)),
            // A worker's reason says more than the budget reached meanwhile.
            (
                Some(Stopped::MaxMessages),
                Some(refused.clone()),
                Some(refused.clone()),
            ),
            (
                Some(Stopped::MaxDuration),
                Some(unreachable.clone()),
                Some(unreachable.clone()),
            ),
            // A signal once the budget was spent: the budget ended the run.
            (
                Some(Stopped::MaxMessages),
                Some(Stopped::Interrupted),
                Some(Stopped::MaxMessages),
            ),
            (
                Some(Stopped::MaxDuration),
                Some(Stopped::Interrupted),
                Some(Stopped::MaxDuration),
            ),
        ] {
            let what = format!("{budget:?} and {halted:?}");
            assert_eq!(why_stopped(budget, halted), stopped, "{what}");
        }
    }

    #[test]
    fn people_another_sender_held_leave_the_run_incomplete_until_the_log_says_all_are_through() {
        let met = |unsettled_in_log| RunReport {
            counts: Counts {
                sent: 3,
                taken: 2,
                ..Counts::default()
            },
            unsettled_in_log,
            ..RunReport::default()
        };
        // A log that cannot say (or a log of one sender): run again.
        assert!(!met(None).is_complete());
        assert!(!met(Some(5)).is_complete());
        assert!(met(Some(0)).is_complete());
        assert_eq!(met(Some(0)).held_elsewhere(), 0);
        assert_eq!(met(Some(1)).held_elsewhere(), 2);
        // Through, but this run's own deferred message is still to retry.
        let mut deferred = met(Some(0));
        deferred.counts.deferred = 1;
        assert!(!deferred.is_complete());
    }

    #[test]
    fn a_message_is_counted_once_and_the_fallback_only_when_it_sent() {
        let progress = Progress::default();
        progress.settle(Outcome::Sent, true, true);
        progress.settle(Outcome::Deferred, false, true);
        progress.settle(Outcome::Unanswered, true, false);
        progress.add(Outcome::Failed);
        progress.add(Outcome::Skipped);
        // Taken by another sender: not resent here, even if it was in doubt.
        progress.settle(Outcome::Taken, true, false);
        let counts = progress.counts();
        assert_eq!(
            counts,
            Counts {
                sent: 1,
                failed: 1,
                deferred: 1,
                unanswered: 1,
                skipped: 1,
                expired: 0,
                taken: 1,
                resent_in_doubt: 2,
                via_fallback: 1,
            }
        );
        assert_eq!(counts.done(), 6);
    }
}
