//! Permits for a campaign sent by several senders at once: the campaign's pace and quotas
//! are kept by whoever grants them (the shared send log), and a sender spends only the
//! permits it was granted, before they expire.
//!
//! The engine sees only this: it takes one permit a message, and when it has none left it
//! asks for more and waits. Whoever grants (`sendlog`'s PostgreSQL log, on its own thread)
//! waits for [`Permits::wanted`] and answers with [`Permits::granted`]: a few permits, a
//! second's worth at most, that lapse one second after the request was sent, so that a grant
//! counted in one second of the granter's clock is spent within the next. Never more than was
//! granted, never later than a second.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use super::{Limits, QuotaSpent};

/// How long granted permits may be spent, from the moment they were asked for.
pub const LIFETIME: Duration = Duration::from_secs(1);

/// How much longer than its length the granter counts a quota: a grant counted in one second
/// is spent within [`LIFETIME`], and its seconds are whole ones. A quota of a minute may so say
/// it is spent for 62 s where a lone sender would wait 60.
pub const MARGIN: Duration = Duration::from_secs(LIFETIME.as_secs() + 1);

/// The permits one sender holds, shared by its connections and its granter.
#[derive(Debug)]
pub struct Permits {
    limits: Limits,
    state: Mutex<Held>,
    /// A connection has none left and waits.
    wanted: Notify,
    /// A grant came.
    changed: Notify,
}

#[derive(Debug, Default)]
struct Held {
    left: u32,
    until: Option<Instant>,
    /// Which grant `left` and `until` are (counted from the first).
    grant: u64,
    /// The granter's last word when it granted none: a quota spent until then.
    spent: Option<QuotaSpent>,
    /// The last spent quota waited for (see [`QuotaSpent::announce`]).
    announced: Option<QuotaSpent>,
}

/// A permit taken from one grant (see [`Permits::give_back`]).
#[derive(Debug)]
#[must_use = "a permit is used or given back"]
pub struct Taken {
    grant: u64,
}

impl Permits {
    /// Permits for a campaign of `limits`, none held yet.
    pub fn new(limits: &Limits) -> Permits {
        Permits {
            limits: limits.clone(),
            state: Mutex::new(Held::default()),
            wanted: Notify::new(),
            changed: Notify::new(),
        }
    }

    /// The campaign's limits, which the granter keeps for all its senders.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How many permits to ask for at once: a second's worth of the tightest limit, at least
    /// one (fewer trips to the granter; what is not spent in its second is lost).
    pub fn grant_size(&self) -> u32 {
        let limits = &self.limits;
        let per_second = [
            limits.rate,
            limits.per_minute.map(|n| f64::from(n) / 60.0),
            limits.per_hour.map(|n| f64::from(n) / 3600.0),
            limits.per_day.map(|n| f64::from(n) / 86_400.0),
        ];
        let tightest = per_second.into_iter().flatten().fold(f64::MAX, f64::min);
        tightest.ceil().clamp(1.0, 10_000.0) as u32
    }

    /// Takes one permit if one is held now; otherwise asks for more and returns false.
    pub fn try_take(&self) -> bool {
        self.try_take_returnable().is_some()
    }

    /// [`Permits::try_take`], with what [`Permits::give_back`] needs if the permit is not
    /// used after all.
    pub fn try_take_returnable(&self) -> Option<Taken> {
        let mut held = self.state.lock().expect("no panic while counting");
        if held.usable() {
            held.left -= 1;
            return Some(Taken { grant: held.grant });
        }
        drop(held);
        self.wanted.notify_one();
        None
    }

    /// Gives back a permit that was not used after all, to the grant it came from, if that is
    /// still the one held. Once another grant has come (a connection found none meanwhile), the
    /// permit is lost: added to the new grant, it would be spent after its own grant lapsed,
    /// outside the seconds the granter counted it in, and the campaign could go one over a
    /// quota at the edge of its window for each such return.
    pub fn give_back(&self, taken: Taken) {
        let mut held = self.state.lock().expect("no panic while counting");
        if held.grant == taken.grant {
            held.left += 1;
        }
    }

    /// Waits for a permit and takes it. When the granter says a quota is spent for longer
    /// than `patience`, returns that instead of waiting.
    pub async fn take(&self, patience: Duration) -> Result<(), QuotaSpent> {
        loop {
            let changed = self.changed.notified();
            if self.try_take() {
                return Ok(());
            }
            {
                let mut held = self.state.lock().expect("no panic while counting");
                if let Some(spent) = held.spent {
                    let wait = spent.until.duration_since(SystemTime::now());
                    // The granter's margin is waited for too: a spent minute is waited out
                    // with several senders as with one.
                    if wait.is_ok_and(|wait| wait > patience + MARGIN) {
                        return Err(spent);
                    }
                    spent.announce(
                        &mut held.announced,
                        ", kept for all the campaign's senders,",
                    );
                }
            }
            // A grant wakes us; the timeout only covers a grant that came between the check
            // and the wait.
            let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
        }
    }

    /// Waits until a connection wants permits and none is held (for the granter): a request
    /// left over from a moment that has passed asks for nothing.
    pub async fn wanted(&self) {
        loop {
            self.wanted.notified().await;
            if !self.state.lock().expect("no panic while counting").usable() {
                return;
            }
        }
    }

    /// The granter's answer to a request sent at `asked`: `count` permits (what was left
    /// lapses), or none and perhaps the quota that is spent.
    pub fn granted(&self, count: u32, asked: Instant, spent: Option<QuotaSpent>) {
        let mut held = self.state.lock().expect("no panic while counting");
        if count > 0 || !held.usable() {
            held.left = count;
            held.until = Some(asked + LIFETIME);
            held.grant += 1;
        }
        held.spent = if count == 0 { spent } else { None };
        drop(held);
        self.changed.notify_waiters();
    }
}

impl Held {
    fn usable(&self) -> bool {
        self.left > 0 && self.until.is_some_and(|until| Instant::now() < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_granted_permits_are_spent_and_they_lapse_after_a_second() {
        let permits = Permits::new(&Limits {
            per_minute: Some(120),
            ..Limits::default()
        });
        assert_eq!(permits.grant_size(), 2);
        assert!(!permits.try_take(), "none granted yet");
        permits.granted(2, Instant::now(), None);
        assert!(permits.try_take() && permits.try_take());
        assert!(!permits.try_take(), "two granted, two spent");
        permits.granted(5, Instant::now() - LIFETIME, None);
        assert!(!permits.try_take(), "asked for a second ago: lapsed");
        let spent = QuotaSpent {
            window: "hour",
            until: SystemTime::now() + Duration::from_secs(600),
        };
        permits.granted(0, Instant::now(), Some(spent));
        let refused = permits.take(Duration::from_secs(60)).await.unwrap_err();
        assert_eq!(refused, spent);
    }

    #[tokio::test]
    async fn a_minute_spent_by_the_granters_count_is_waited_for_not_refused() {
        let permits = Permits::new(&Limits {
            per_minute: Some(10),
            ..Limits::default()
        });
        // What the database says of a minute just spent: its length and the margin.
        let spent = QuotaSpent {
            window: "minute",
            until: SystemTime::now() + Duration::from_secs(60) + MARGIN,
        };
        permits.granted(0, Instant::now(), Some(spent));
        let waiting = permits.take(Duration::from_secs(60));
        tokio::pin!(waiting);
        let early = tokio::time::timeout(Duration::from_millis(200), &mut waiting).await;
        assert!(
            early.is_err(),
            "refused a wait a lone sender makes: {early:?}"
        );
        permits.granted(1, Instant::now(), None);
        assert_eq!(waiting.await, Ok(()));
    }

    #[test]
    fn a_permit_given_back_after_the_next_grant_came_is_not_added_to_it() {
        let permits = Permits::new(&Limits {
            rate: Some(2.0),
            ..Limits::default()
        });
        permits.granted(1, Instant::now(), None);
        let taken = permits.try_take_returnable().expect("one granted");
        // Meanwhile another connection found none, and the next grant came: two, counted by
        // the granter in its own second.
        permits.granted(2, Instant::now(), None);
        // The first grant's permit, unused after all, belongs to a grant that is gone.
        permits.give_back(taken);
        let mut taken = 0;
        while permits.try_take() {
            taken += 1;
        }
        assert_eq!(taken, 2, "the grant of two spent as three");
        // Given back to the grant it came from, a permit is there again.
        permits.granted(1, Instant::now(), None);
        let taken = permits.try_take_returnable().expect("one granted");
        permits.give_back(taken);
        assert!(permits.try_take());
    }
}
