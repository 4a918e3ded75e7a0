//! A sender's lease on the people it claimed in a log shared by several senders: how long the
//! others leave its claims alone, and the local deadline by which it must stop handing
//! messages over if it could not renew the lease.
//!
//! The lease is kept by the database's clock (one clock for every host), but a sender cut off
//! from the database cannot read that clock: it counts on its own monotonic clock from the
//! moment it *sent* its last renewal that succeeded. The database set the lease's end after
//! that moment, so `sent + lease` is never later than the end the others see, and a margin
//! leaves time for a message in hand to be finished before anyone may take its person over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A lease's local deadline, shared by the connection that renews it and the engine that
/// must stop before it passes. Cheap to clone and to ask.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The instant deadlines are counted from.
    base: Instant,
    /// Milliseconds after `base` until which messages may still be handed over.
    until: Arc<AtomicU64>,
    length: Duration,
}

impl Lease {
    /// A lease of `length`, renewed (by the database) at `sent`.
    pub(crate) fn new(length: Duration, sent: Instant) -> Lease {
        let lease = Lease {
            base: sent,
            until: Arc::new(AtomicU64::new(0)),
            length,
        };
        lease.renewed(sent);
        lease
    }

    /// The database renewed the lease by a request sent at `sent`.
    pub(crate) fn renewed(&self, sent: Instant) {
        let until = sent.saturating_duration_since(self.base) + self.usable();
        let until = u64::try_from(until.as_millis()).unwrap_or(u64::MAX);
        self.until.fetch_max(until, Ordering::AcqRel);
    }

    /// How long after a renewal messages may still go: half the lease, so that the message in
    /// hand (its DATA and the reply) is over well before the others may take its person.
    fn usable(&self) -> Duration {
        self.length / 2
    }

    /// How often the lease is renewed: four times a lease, so that one or two renewals lost
    /// to a slow moment do not stop the sender.
    pub(crate) fn every(&self) -> Duration {
        self.length / 4
    }

    /// Whether messages may still be handed over.
    pub fn live(&self) -> bool {
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        now < self.until.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_not_renewed_stops_before_half_its_length() {
        let start = Instant::now() - Duration::from_millis(600);
        let lease = Lease::new(Duration::from_secs(1), start);
        assert!(
            !lease.live(),
            "600 ms after a 1 s lease's renewal nothing may go"
        );
        lease.renewed(Instant::now());
        assert!(lease.live());
        // An older renewal answering late never shortens it.
        lease.renewed(start);
        assert!(lease.live());
        assert_eq!(lease.every(), Duration::from_millis(250));
    }
}
