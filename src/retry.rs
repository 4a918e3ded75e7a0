//! When to try a deferred message again, and when to stop trying: the policy of an MTA queue.
//!
//! A 4xx reply means "not now". The next attempt waits `first_delay`, then twice as long each
//! time up to `max_delay`, with ±20 % jitter so that thousands of deferred messages do not all
//! come back in the same second. After `max_attempts` attempts, or once `give_up_after` has
//! passed since the first one, the message is failed for good, with the reason.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long and how often deferred messages are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per person, the first included.
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Counted from the first attempt.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// Close to what MTAs do: 5 minutes, doubling to 4 hours, for at most 3 days or 8 attempts.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            first_delay: Duration::from_secs(5 * 60),
            max_delay: Duration::from_secs(4 * 3600),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The delay before the attempt that follows `attempts` attempts, without jitter.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.first_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }

    /// When to try again after `attempts` attempts, the last one deferred `now`; rounded up to
    /// the second, as the log writes it, so that a retry never comes early.
    pub fn next_attempt(&self, attempts: u32, now: SystemTime) -> SystemTime {
        let jitter = 0.8 + 0.4 * fastrand::f64();
        let due = now + self.backoff(attempts).mul_f64(jitter);
        let since_epoch = due.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// Why no further attempt should be made, if none should.
    pub fn give_up(
        &self,
        attempts: u32,
        first_attempt: Option<SystemTime>,
        now: SystemTime,
    ) -> Option<String> {
        if attempts >= self.max_attempts {
            return Some(format!("gave up after {attempts} attempts"));
        }
        let age = first_attempt.and_then(|first| now.duration_since(first).ok())?;
        (age >= self.give_up_after).then(|| {
            format!(
                "gave up after {} since the first attempt ({attempts} attempts)",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(300),
            give_up_after: Duration::from_secs(3600),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let delays: Vec<u64> = (1..=5).map(|n| policy().backoff(n).as_secs()).collect();
        assert_eq!(delays, [60, 120, 240, 300, 300]);
        assert_eq!(policy().backoff(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for _ in 0..200 {
            let wait = policy().next_attempt(2, now).duration_since(now).unwrap();
            assert!((96..=144).contains(&wait.as_secs()), "{wait:?}");
        }
    }

    #[test]
    fn gives_up_on_attempts_or_age() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let p = policy();
        assert_eq!(
            p.give_up(3, Some(start), start + Duration::from_secs(60)),
            None
        );
        assert!(
            p.give_up(4, Some(start), start)
                .unwrap()
                .contains("4 attempts")
        );
        let late = p
            .give_up(2, Some(start), start + Duration::from_secs(3600))
            .unwrap();
        assert!(late.contains("1h since the first attempt"), "{late}");
    }
}
