//! What a run does with one person, from where the send log says they stand: one pure
//! function, so that the engine's producer and `status` cannot come to different answers.
//!
//! It reads the replay's entry and the retry policy, and the clock only through `now`; it
//! writes nothing. Rows the list itself rules out (rejected, suppressed) are the caller's:
//! the engine passes over them before asking, `status` counts a suppressed person who was
//! sent as sent.

use std::time::SystemTime;

use super::InDoubt;
use crate::retry::RetryPolicy;
use crate::sendlog::{Entry, Status};

/// What to do with one person this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The log has their final outcome, [`Status::Sent`] or [`Status::Failed`]: nothing to do.
    Done(Status),
    /// Left in doubt by an earlier run, and `--in-doubt skip`: assumed to have arrived.
    SkipInDoubt,
    /// Deferred too often or for too long: to be recorded as failed, for this reason.
    GiveUp(String),
    /// Deferred, and not due before this time.
    NotDue(SystemTime),
    /// To be sent now.
    Send {
        /// Where the log had them: `None` never attempted, `Deferred` due again, `InDoubt`
        /// sent again with the same Message-ID.
        earlier: Option<Status>,
        /// Attempts earlier runs made: the backoff grows with them.
        attempts_before: u32,
    },
}

/// Decides for a person whose log entry is `entry` (none: never attempted), at `now`.
pub fn decide(
    entry: Option<&Entry>,
    in_doubt: InDoubt,
    retry: &RetryPolicy,
    now: SystemTime,
) -> Decision {
    let Some(entry) = entry else {
        return Decision::Send {
            earlier: None,
            attempts_before: 0,
        };
    };
    if entry.status.is_final() {
        return Decision::Done(entry.status);
    }
    if entry.status == Status::InDoubt && in_doubt == InDoubt::Skip {
        return Decision::SkipInDoubt;
    }
    // The retry policy is about refusals: an in-doubt message may well have arrived, and is
    // sent again (same Message-ID) however many attempts it took.
    if entry.status == Status::Deferred
        && let Some(reason) = retry.give_up(entry.attempts, entry.first_attempt, now)
    {
        return Decision::GiveUp(reason);
    }
    if let Some(due) = entry.retry_at.filter(|due| *due > now) {
        return Decision::NotDue(due);
    }
    Decision::Send {
        earlier: Some(entry.status),
        attempts_before: entry.attempts,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            give_up_after: 24 * HOUR,
            ..RetryPolicy::default()
        }
    }

    fn entry(status: Status, attempts: u32, retry_at: Option<SystemTime>) -> Entry {
        Entry {
            status,
            attempts,
            first_attempt: Some(SystemTime::UNIX_EPOCH + 1000 * HOUR),
            retry_at,
        }
    }

    #[test]
    fn each_standing_in_the_log_comes_to_one_decision() {
        let first = SystemTime::UNIX_EPOCH + 1000 * HOUR;
        let now = first + HOUR;
        let later = now + HOUR;
        let send = |earlier, attempts_before| Decision::Send {
            earlier,
            attempts_before,
        };
        let resend = InDoubt::Resend;
        for (entry, in_doubt, decision) in [
            (None, resend, send(None, 0)),
            (
                Some(entry(Status::Sent, 1, None)),
                resend,
                Decision::Done(Status::Sent),
            ),
            (
                Some(entry(Status::Failed, 2, None)),
                resend,
                Decision::Done(Status::Failed),
            ),
            // A withdrawn attempt put them back where they were.
            (
                Some(entry(Status::Pending, 1, None)),
                resend,
                send(Some(Status::Pending), 1),
            ),
            (
                Some(entry(Status::InDoubt, 1, None)),
                resend,
                send(Some(Status::InDoubt), 1),
            ),
            (
                Some(entry(Status::InDoubt, 1, None)),
                InDoubt::Skip,
                Decision::SkipInDoubt,
            ),
            // In doubt however many attempts: the retry policy is about refusals.
            (
                Some(entry(Status::InDoubt, 9, None)),
                resend,
                send(Some(Status::InDoubt), 9),
            ),
            (
                Some(entry(Status::Deferred, 1, Some(later))),
                resend,
                Decision::NotDue(later),
            ),
            (
                Some(entry(Status::Deferred, 1, Some(now))),
                resend,
                send(Some(Status::Deferred), 1),
            ),
            (
                Some(entry(Status::Deferred, 2, None)),
                resend,
                send(Some(Status::Deferred), 2),
            ),
            // Given up before waiting: a message that will never go is not "not due".
            (
                Some(entry(Status::Deferred, 3, Some(later))),
                resend,
                Decision::GiveUp("gave up after 3 attempts".into()),
            ),
        ] {
            let what = format!("{entry:?} with {in_doubt:?}");
            assert_eq!(
                decide(entry.as_ref(), in_doubt, &policy(), now),
                decision,
                "{what}"
            );
        }
    }

    #[test]
    fn a_deferred_message_is_given_up_when_its_first_attempt_is_too_old() {
        let first = SystemTime::UNIX_EPOCH + 1000 * HOUR;
        let deferred = entry(Status::Deferred, 1, Some(first + 2 * HOUR));
        let now = first + 25 * HOUR;
        assert!(matches!(
            decide(Some(&deferred), InDoubt::Resend, &policy(), now),
            Decision::GiveUp(reason) if reason.starts_with("gave up after 1day")
        ));
    }
}
