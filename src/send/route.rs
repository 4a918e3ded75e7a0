//! Which relay to connect to, and when to give up: the plan B of the seed letter's second story.
//!
//! Connections go to the primary relay. When it cannot be reached (refused, TLS failure,
//! timeout, a 421 "busy" greeting) and a fallback relay is configured, new connections go to the
//! fallback, and every `retry_primary_after` one of them tries the primary again, handing back
//! as soon as it answers. Failed connections are retried with exponential backoff and jitter.
//! When connections keep failing with no message getting an answer in between
//! (`max_connect_failures` in a row, whichever relay), the run stops rather than burn through
//! the list: what was not attempted stays pending for the next run. Tries under way count
//! against the limit, so that the pool's connections, failing together, never make more tries
//! than it allows.
//!
//! A relay whose certificate cannot be trusted will not mend by itself: with a fallback, it is
//! set aside for the rest of the run (an error says so, and connections go to the other relay,
//! which may be down too: the error says what is known of it, and the run's report what it
//! carried); without one, or when the other relay cannot carry the run either, the run stops on
//! it, for a person to mend.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Stopped;
use crate::smtp::{Connection, Relay, RelayName, Trouble};

/// The first wait after a failed connection; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// How the route reacts to failures.
#[derive(Debug, Clone, PartialEq)]
pub struct Failover {
    /// Consecutive failures (connections, or transactions cut short) after which the run stops.
    pub max_connect_failures: u32,
    /// While on the fallback, how often to try the primary again.
    pub retry_primary_after: Duration,
}

impl Default for Failover {
    fn default() -> Self {
        Failover {
            max_connect_failures: 6,
            retry_primary_after: Duration::from_secs(30),
        }
    }
}

/// The relays of a run and what is known of their health; shared by every connection.
pub struct Route {
    primary: Relay,
    fallback: Option<Relay>,
    failover: Failover,
    state: Mutex<Health>,
    /// Told when a try to connect ends, for the connections waiting to start theirs.
    try_ended: Notify,
}

#[derive(Debug)]
struct Health {
    /// Failures since a server last answered a message.
    streak: u32,
    /// Tries to connect under way: each may yet add to the streak.
    trying: u32,
    /// Since when the primary is known to be down (only tracked with a fallback).
    primary_down: Option<Instant>,
    last_probe: Option<Instant>,
    /// The relay whose certificate cannot be trusted, set aside for the rest of the run (only
    /// with a fallback), and why.
    set_aside: Option<(RelayName, String)>,
}

impl Route {
    pub fn new(primary: Relay, fallback: Option<Relay>, failover: Failover) -> Route {
        Route {
            primary,
            fallback,
            failover,
            state: Mutex::new(Health {
                streak: 0,
                trying: 0,
                primary_down: None,
                last_probe: None,
                set_aside: None,
            }),
            try_ended: Notify::new(),
        }
    }

    pub fn primary(&self) -> &Relay {
        &self.primary
    }

    /// A new connection, after as many tries (with backoff) as the failover allows; `Err`,
    /// why the run should stop, when it gives up (or a login was refused, or a certificate,
    /// which no retry mends). `keep_trying` is asked before each try (a signal, another
    /// connection that already gave up).
    pub async fn connect(
        &self,
        keep_trying: impl Fn() -> bool,
    ) -> Result<(Connection, &Relay), Stopped> {
        let stopping = || Stopped::Unreachable("the run is stopping".into());
        loop {
            if !keep_trying() {
                return Err(stopping());
            }
            let relay = self.choose();
            let turn = relay.turn().await;
            // The turn may come after other connections' tries, which may have failed: ask
            // again, so that no try is made past the limit.
            if !keep_trying() {
                return Err(stopping());
            }
            // Made before the count is read, so that a try ending in between still wakes it.
            let ended = self.try_ended.notified();
            let Some(trying) = self.start_try()? else {
                // Should the tries under way all fail, the limit is reached: wait for one to
                // end, then choose again (without holding the relay's turn meanwhile).
                drop(turn);
                ended.await;
                continue;
            };
            if self.is_set_aside(relay) {
                continue;
            }
            let attempt = match turn {
                Ok(turn) => relay.connect(turn).await,
                Err(refused) => Err(refused),
            };
            match attempt {
                Ok(connection) => {
                    self.connected(relay);
                    return Ok((connection, relay));
                }
                Err(Trouble::LoginRefused(reply)) => {
                    let why = format!("{}: {reply}", relay.endpoint());
                    tracing::error!(relay = relay.name.as_str(), %why, "the relay refused the login");
                    return Err(Stopped::LoginRefused {
                        relay: relay.name,
                        why,
                    });
                }
                Err(Trouble::Untrusted(why)) => {
                    let why = format!("{}: {why}", relay.endpoint());
                    if !self.set_aside(relay, &why) {
                        tracing::error!(relay = relay.name.as_str(), %why, "the relay's certificate cannot be trusted");
                        return Err(Stopped::Untrusted {
                            relay: relay.name,
                            why,
                        });
                    }
                }
                Err(trouble) => {
                    let streak = self.failed(relay, &trouble);
                    // Counted in the streak before it stops counting as under way.
                    drop(trying);
                    if streak >= self.failover.max_connect_failures {
                        return Err(self.give_up(format!(
                            "{} ({} relay) after {streak} failures in a row: {trouble}",
                            relay.endpoint(),
                            relay.name
                        )));
                    }
                    tokio::time::sleep(backoff(streak)).await;
                }
            }
        }
    }

    /// A connection broke in the middle of a message (lost, timed out, 421). True when the run
    /// should stop.
    pub fn broke(&self, relay: &Relay, trouble: &Trouble) -> bool {
        self.failed(relay, trouble) >= self.failover.max_connect_failures
    }

    /// How long to wait before reconnecting after the current streak of failures.
    pub fn pause(&self) -> Duration {
        backoff(
            self.state
                .lock()
                .expect("no panic holding the route")
                .streak,
        )
    }

    /// A server answered a message (yes or no): the route works.
    pub fn answered(&self) {
        self.state
            .lock()
            .expect("no panic holding the route")
            .streak = 0;
    }

    /// True when a connection to `relay` should be closed so that the next one tries the
    /// primary again: connections are reused for many messages, so without this a run that
    /// fell back would never hand back.
    pub fn should_leave(&self, relay: &Relay) -> bool {
        if relay.name == self.primary.name {
            return false;
        }
        let health = self.state.lock().expect("no panic holding the route");
        health.set_aside.is_none()
            && health.primary_down.is_some()
            && health
                .last_probe
                .is_none_or(|last| last.elapsed() >= self.failover.retry_primary_after)
    }

    /// The relay the next connection should try.
    fn choose(&self) -> &Relay {
        let Some(fallback) = &self.fallback else {
            return &self.primary;
        };
        let mut health = self.state.lock().expect("no panic holding the route");
        match health.set_aside {
            Some((name, _)) if name == self.primary.name => return fallback,
            Some(_) => return &self.primary,
            None => {}
        }
        if health.primary_down.is_none() {
            return &self.primary;
        }
        let probe_due = health
            .last_probe
            .is_none_or(|last| last.elapsed() >= self.failover.retry_primary_after);
        if probe_due {
            health.last_probe = Some(Instant::now());
            &self.primary
        } else {
            fallback
        }
    }

    /// Counts a try to connect as under way until the [`Trying`] returned is dropped. `Err`,
    /// why to stop rather than try, when the failures in a row have reached the limit (while
    /// this connection waited for its turn, other connections' tries failed); `None` when the
    /// tries under way would reach it if they all failed: this one must wait for them.
    fn start_try(&self) -> Result<Option<Trying<'_>>, Stopped> {
        let mut health = self.state.lock().expect("no panic holding the route");
        let streak = health.streak;
        if streak >= self.failover.max_connect_failures {
            drop(health);
            return Err(self.give_up(format!("after {streak} failures in a row")));
        }
        if streak + health.trying >= self.failover.max_connect_failures {
            return Ok(None);
        }
        health.trying += 1;
        Ok(Some(Trying(self)))
    }

    /// Why the run stops when no relay answers: unreachable, unless one of them was set aside
    /// for its certificate, which a person must mend (the other may come back by itself).
    fn give_up(&self, unreachable: String) -> Stopped {
        let health = self.state.lock().expect("no panic holding the route");
        match &health.set_aside {
            Some((relay, why)) => {
                // The stop names the certificate, which a person must mend; this says why the
                // other relay did not carry the run instead.
                tracing::error!(
                    relay = relay.other().as_str(),
                    "the {} relay, tried instead of the {relay} one set aside, does not answer \
                     either ({unreachable}): no relay is left, the run stops",
                    relay.other()
                );
                Stopped::Untrusted {
                    relay: *relay,
                    why: why.clone(),
                }
            }
            None => Stopped::Unreachable(unreachable),
        }
    }

    /// The relay set aside for its certificate this run, if one was, and why.
    pub fn set_aside_relay(&self) -> Option<(RelayName, String)> {
        let health = self.state.lock().expect("no panic holding the route");
        health.set_aside.clone()
    }

    fn is_set_aside(&self, relay: &Relay) -> bool {
        let health = self.state.lock().expect("no panic holding the route");
        health
            .set_aside
            .as_ref()
            .is_some_and(|(name, _)| *name == relay.name)
    }

    /// Sets `relay` aside for the rest of the run, its certificate not trusted, so that
    /// connections go to the other relay; says so once, as an error, since a person must mend
    /// it. False when no relay would be left: no fallback, or the other one set aside already.
    fn set_aside(&self, relay: &Relay, why: &str) -> bool {
        let mut health = self.state.lock().expect("no panic holding the route");
        match &health.set_aside {
            // Another connection found it first.
            Some((name, _)) => return *name == relay.name,
            None if self.fallback.is_none() => return false,
            None => {}
        }
        tracing::error!(
            relay = relay.name.as_str(),
            %why,
            "the relay's certificate cannot be trusted: set aside for this run; {}; mend this \
             before the next run",
            self.instead(relay.name, &health)
        );
        health.set_aside = Some((relay.name, why.to_owned()));
        true
    }

    /// What happens instead of `set_aside`, as far as is known when it is set aside: whether the
    /// other relay carries the run is not known yet (the run's report says what it carried),
    /// and the primary may be known to be down.
    fn instead(&self, set_aside: RelayName, health: &Health) -> String {
        let other = set_aside.other();
        match health.primary_down {
            Some(since) if other == self.primary.name => format!(
                "connections go back to the {other} relay instead, though it has not answered \
                 {}: the run stops if it still does not",
                match since.elapsed().as_secs() {
                    0 => "since its last try".to_owned(),
                    secs => format!(
                        "for {}",
                        humantime::format_duration(Duration::from_secs(secs))
                    ),
                }
            ),
            _ => format!("connections go to the {other} relay instead"),
        }
    }

    fn connected(&self, relay: &Relay) {
        let mut health = self.state.lock().expect("no panic holding the route");
        if relay.name == self.primary.name
            && let Some(since) = health.primary_down.take()
        {
            tracing::warn!(
                relay = %self.primary.endpoint(),
                down_for = %humantime::format_duration(Duration::from_secs(since.elapsed().as_secs())),
                "the primary relay answers again: handing back to it"
            );
        }
    }

    /// Counts a failure; returns the streak.
    fn failed(&self, relay: &Relay, trouble: &Trouble) -> u32 {
        let mut health = self.state.lock().expect("no panic holding the route");
        health.streak += 1;
        tracing::warn!(relay = %relay.endpoint(), %trouble, streak = health.streak, "SMTP connection failed");
        if self.fallback.is_some()
            && relay.name == self.primary.name
            && health.primary_down.is_none()
        {
            health.primary_down = Some(Instant::now());
            health.last_probe = Some(Instant::now());
            tracing::warn!(
                relay = %self.primary.endpoint(),
                "the primary relay is unreachable: switching to the fallback"
            );
        }
        health.streak
    }
}

/// A try to connect under way, counted by [`Route::start_try`]; it stops counting when dropped,
/// its failure (if it failed) counted in the streak first, and wakes the connections waiting.
struct Trying<'a>(&'a Route);

impl Drop for Trying<'_> {
    fn drop(&mut self) {
        // Never a panic here, which could be one during another's unwinding.
        self.0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .trying -= 1;
        self.0.try_ended.notify_waiters();
    }
}

/// The wait after the `streak`-th failure in a row: doubling, capped, ±20 % jitter so that
/// connections do not all come back at the same instant.
fn backoff(streak: u32) -> Duration {
    let doublings = streak.saturating_sub(1).min(16);
    let base = FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF);
    base.mul_f64(0.8 + 0.4 * fastrand::f64())
}

#[cfg(test)]
mod tests;
