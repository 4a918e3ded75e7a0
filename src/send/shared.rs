//! What the workers of one run share: where messages go, the log, the pace, and the run's
//! ends (its budget, the campaign's window and `send_before`, a lost lease). Every worker and
//! the producer ask it the same two questions: must the run stop now, and may one more message
//! go ([`Shared::admit`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use super::delivery::Delivery;
use super::{Progress, Stopped};
use crate::ratelimit::{Pace, QuotaSpent};
use crate::retry::RetryPolicy;
use crate::sendlog::LogWriter;

/// What the workers share.
pub struct Shared<D: Delivery> {
    pub route: D,
    pub log: LogWriter,
    pub retry: RetryPolicy,
    pub pace: Pace,
    pub progress: Arc<Progress>,
    pub refusals: Option<mpsc::Sender<super::Refusal>>,
    /// Set once, by whoever first decides the run must stop: a worker, the deadline, or the
    /// caller's shutdown.
    pub halt: watch::Sender<Option<Stopped>>,
    /// How long a spent quota may hold a message before the run stops instead.
    pub patience: Duration,
    /// `--max-duration`: no message is taken off the queue after this.
    pub deadline: Option<Instant>,
    /// The campaign's `send_before`: no message is handed over from then on.
    pub send_before: Option<SystemTime>,
    /// When the campaign's `[window]` closes: no message is handed over from then on.
    pub window_closes: Option<SystemTime>,
}

impl<D: Delivery> Shared<D> {
    pub fn stop(&self, why: Stopped) {
        self.halt.send_if_modified(|halt| {
            let first = halt.is_none();
            if first {
                *halt = Some(why);
            }
            first
        });
    }

    pub(super) fn stopping(&self) -> bool {
        // The queue holds messages taken before the clock ran out: they wait for the next run.
        if let Some(why) = clock_stop(self.deadline, self.window_closes) {
            self.stop(why);
        }
        // Past the lease's local deadline another sender may take over what this one holds:
        // nothing more is handed over.
        if !self.log.live() {
            self.stop(Stopped::LeaseLost);
        }
        self.halt.borrow().is_some()
    }

    /// True once `send_before` has passed: what is not in hand is withdrawn, not sent.
    pub(super) fn expired(&self) -> bool {
        self.send_before
            .is_some_and(|before| SystemTime::now() >= before)
    }

    /// The pace's leave for one more message, or `None` when `send_before` passes first: the
    /// workers waiting their turn in the pace must not hold the run's end a slot each.
    /// A log shared by several senders grants the pace's permits: one that lost its lease
    /// (cut off from the database) grants none, and the wait ends with the lease (it comes
    /// back admitted; the caller sees the lease lost before anything is handed over).
    pub(super) async fn admit(&self) -> Option<Result<(), QuotaSpent>> {
        let admit = self.pace.admit(self.patience);
        let lease_lost = async {
            while self.log.live() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        // A slow pace's turn may come long after the run's budget (it comes back admitted;
        // the caller sees the run out of time before anything is handed over).
        let out_of_time = async {
            match self.deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        // Nor may it outlast the run: stopped (a signal, a worker's reason), a message waiting
        // its turn is not in hand, and goes back with the queue.
        let mut halt = self.halt.subscribe();
        let halted = async move {
            let _ = halt.wait_for(Option::is_some).await;
        };
        let left = self.send_before.map_or(Duration::MAX, |before| {
            before.duration_since(SystemTime::now()).unwrap_or_default()
        });
        tokio::select! {
            admitted = admit => Some(admitted),
            () = lease_lost => Some(Ok(())),
            () = out_of_time => Some(Ok(())),
            () = halted => Some(Ok(())),
            () = tokio::time::sleep(left) => None,
        }
    }
}

/// Why the clock stops the run now, if it does: the budget's `--max-duration` spent, or the
/// campaign's `[window]` closed. The producer and the workers ask the same question.
pub(super) fn clock_stop(
    deadline: Option<Instant>,
    window_closes: Option<SystemTime>,
) -> Option<Stopped> {
    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
        Some(Stopped::MaxDuration)
    } else if window_closes.is_some_and(|closes| SystemTime::now() >= closes) {
        Some(Stopped::WindowClosed)
    } else {
        None
    }
}
