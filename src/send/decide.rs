//! What a run does with one person, from where the send log says they stand: one pure
//! function, so that the engine's producer and `status` cannot come to different answers.
//!
//! It reads the replay's entry, the retry policy and the campaign's `send_before`, and the clock
//! only through `now`; it writes nothing.
//!
//! Past `send_before` nobody is mailed: a person never attempted (or whose attempt was
//! withdrawn) has expired; a message in doubt is not sent again (it may have arrived); a deferred
//! one is given up, recorded as failed, as is one whose retry would fall after `send_before`
//! even before it passes: it can never be sent, and a campaign with a final outcome for everyone
//! is done (exit 0). Rows the list itself rules out (rejected, suppressed) are the caller's:
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
    /// Left in doubt by an earlier run, and `--in-doubt skip` or `send_before` passed: not sent
    /// again.
    SkipInDoubt,
    /// Never attempted (or withdrawn), and `send_before` has passed: never to be sent.
    Expired,
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

/// Decides for a person whose log entry is `entry` (none: never attempted), at `now`, for a
/// campaign that sends nothing from `send_before` on.
pub fn decide(
    entry: Option<&Entry>,
    in_doubt: InDoubt,
    retry: &RetryPolicy,
    send_before: Option<SystemTime>,
    now: SystemTime,
) -> Decision {
    let expired = send_before.is_some_and(|before| now >= before);
    let Some(entry) = entry else {
        if expired {
            return Decision::Expired;
        }
        return Decision::Send {
            earlier: None,
            attempts_before: 0,
        };
    };
    if entry.status.is_final() {
        return Decision::Done(entry.status);
    }
    if entry.status == Status::InDoubt && (in_doubt == InDoubt::Skip || expired) {
        return Decision::SkipInDoubt;
    }
    if entry.status == Status::Pending && expired {
        return Decision::Expired;
    }
    // The retry policy is about refusals: an in-doubt message may well have arrived, and is
    // sent again (same Message-ID) however many attempts it took.
    if entry.status == Status::Deferred
        && let Some(reason) = retry.give_up(entry.attempts, entry.first_attempt, now)
    {
        return Decision::GiveUp(reason);
    }
    if entry.status == Status::Deferred
        && let Some(before) = send_before
        && (expired || entry.retry_at.is_some_and(|due| due >= before))
    {
        return Decision::GiveUp(format!(
            "send_before ({}) passed before a retry",
            crate::sendlog::timestamp(before)
        ));
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
                decide(entry.as_ref(), in_doubt, &policy(), None, now),
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
            decide(Some(&deferred), InDoubt::Resend, &policy(), None, now),
            Decision::GiveUp(reason) if reason.starts_with("gave up after 1day")
        ));
    }

    #[test]
    fn past_send_before_nobody_is_mailed_and_a_retry_after_it_is_given_up() {
        let first = SystemTime::UNIX_EPOCH + 1000 * HOUR;
        let now = first + HOUR;
        let (passed, ahead) = (Some(now), Some(now + HOUR));
        let decided = |entry: Option<Entry>, before| {
            decide(entry.as_ref(), InDoubt::Resend, &policy(), before, now)
        };
        let given_up = Decision::GiveUp(format!(
            "send_before ({}) passed before a retry",
            crate::sendlog::timestamp(now + HOUR)
        ));
        assert_eq!(decided(None, passed), Decision::Expired);
        assert_eq!(
            decided(Some(entry(Status::Pending, 1, None)), passed),
            Decision::Expired
        );
        assert_eq!(
            decided(Some(entry(Status::InDoubt, 1, None)), passed),
            Decision::SkipInDoubt
        );
        assert_eq!(
            decided(Some(entry(Status::Sent, 1, None)), passed),
            Decision::Done(Status::Sent)
        );
        assert!(matches!(
            decided(Some(entry(Status::Deferred, 1, Some(now))), passed),
            Decision::GiveUp(reason) if reason.starts_with("send_before")
        ));
        // Before it: as without one, unless the retry would come too late.
        assert_eq!(
            decided(None, ahead),
            Decision::Send {
                earlier: None,
                attempts_before: 0
            }
        );
        assert_eq!(
            decided(
                Some(entry(Status::Deferred, 1, Some(now + 2 * HOUR))),
                ahead
            ),
            given_up
        );
        assert_eq!(
            decided(
                Some(entry(Status::Deferred, 1, Some(now + HOUR / 2))),
                ahead
            ),
            Decision::NotDue(now + HOUR / 2)
        );
    }
}
