//! How fast missive sends: a steady pace, and quotas that hold across runs.
//!
//! The pace (messages per second, with a burst) is governor's GCRA: exact over any stretch of
//! time, and shared by every connection. The quotas cap what one campaign may send per minute,
//! hour and day. They are what protects the things a message points at, not just the mail
//! server: the seed letter's third story is a donation page taken down by a sudden flood of
//! readers, and a per-minute quota is how a user caps that traffic. Quotas are rolling windows
//! counted from the send log's `attempt` records, so a cron job started every ten minutes
//! still sends no more than the daily quota.
//!
//! A campaign sent by several senders at once keeps its pace and quotas in the shared log:
//! there each message also needs one of the [`Permits`] the log granted this sender.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::{DefaultDirectRateLimiter, Quota};

mod permits;

pub use permits::{LIFETIME, MARGIN, Permits, Taken};

/// The longest window a quota can have; the send log's history is kept this far back.
pub const HISTORY: Duration = Duration::from_secs(24 * 3600);

/// The pace and quotas of a campaign.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Messages per second.
    pub rate: Option<f64>,
    /// Messages that may go back to back after a quiet moment (at least 1; campaigns default
    /// to 2, which lets the pace make up for the timer's late wake-ups).
    pub burst: u32,
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub per_day: Option<u32>,
}

impl Limits {
    /// The quotas set, each as its window's name, its length in seconds, and how many messages
    /// it lets through: what every sender and the database keep alike.
    pub(crate) fn quotas(&self) -> impl Iterator<Item = (&'static str, u64, u32)> {
        [
            ("minute", 60, self.per_minute),
            ("hour", 3600, self.per_hour),
            ("day", 86_400, self.per_day),
        ]
        .into_iter()
        .filter_map(|(name, length, limit)| limit.map(|limit| (name, length, limit)))
    }
}

/// Attempts per second over the last [`HISTORY`], as replayed from a send log: unix second →
/// attempts that second. At most one entry a second, so bounded whatever the list's size.
pub type History = BTreeMap<u64, u32>;

/// A quota is spent until this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpent {
    pub window: &'static str,
    pub until: SystemTime,
}

impl QuotaSpent {
    /// Says, once for each quota spent, that the run waits for it: a run waiting out a spent
    /// minute (or a shared quota, `whose`) is silent otherwise, and looks hung. `last` is the
    /// last one said; every connection waits for it, the first to see it says it. Another
    /// time within a second or two is the same wait (a shared quota's time is the database's
    /// clock read again).
    fn announce(self, last: &mut Option<QuotaSpent>, whose: &str) {
        let same = last.is_some_and(|said| {
            said.window == self.window
                && unix_seconds(said.until).abs_diff(unix_seconds(self.until)) <= 2
        });
        if !same {
            *last = Some(self);
            let until = humantime::format_rfc3339_seconds(self.until);
            tracing::info!(
                quota = self.window,
                %until,
                "the {} quota{whose} is spent until {until}: waiting for it",
                self.window
            );
        }
    }
}

/// Admits messages at the campaign's pace and within its quotas; shared by every connection.
pub struct Pace {
    rate: Option<f64>,
    steady: Option<DefaultDirectRateLimiter>,
    quotas: Mutex<Quotas>,
    /// The last quota waited for (see [`QuotaSpent::announce`]).
    announced: Mutex<Option<QuotaSpent>>,
    /// Permits granted for the campaign as a whole, when several senders share it.
    shared: Option<Arc<Permits>>,
}

impl Pace {
    /// A pace for `limits`, with quotas already charged with `history`.
    pub fn new(limits: &Limits, history: &History) -> Pace {
        let steady = limits.rate.map(|rate| {
            let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
            let burst = NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::with_period(period)
                .expect("the period is not zero")
                .allow_burst(burst);
            DefaultDirectRateLimiter::direct(quota)
        });
        Pace {
            rate: limits.rate,
            steady,
            quotas: Mutex::new(Quotas::new(limits, history)),
            announced: Mutex::new(None),
            shared: None,
        }
    }

    /// This pace, each message of which also spends one of `shared`'s permits.
    pub fn sharing(mut self, shared: Option<Arc<Permits>>) -> Pace {
        self.shared = shared;
        self
    }

    /// Messages per second, when the pace has a rate.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// Counts one more message if it may go now, without waiting; false (and nothing counted)
    /// otherwise.
    pub fn try_admit(&self) -> bool {
        let taken = match &self.shared {
            Some(shared) => match shared.try_take_returnable() {
                Some(taken) => Some((shared, taken)),
                None => return false,
            },
            None => None,
        };
        let admitted = self.try_admit_here();
        if let (false, Some((shared, taken))) = (admitted, taken) {
            shared.give_back(taken);
        }
        admitted
    }

    fn try_admit_here(&self) -> bool {
        let now = SystemTime::now();
        let mut quotas = self.quotas.lock().expect("no panic while counting");
        if quotas.spent(now).is_some() {
            return false;
        }
        if let Some(steady) = &self.steady
            && steady.check().is_err()
        {
            return false;
        }
        quotas.count(now);
        true
    }

    /// Waits until one more message may go, and counts it. When a quota is spent for longer
    /// than `patience`, returns when it frees up instead of waiting.
    pub async fn admit(&self, patience: Duration) -> Result<(), QuotaSpent> {
        loop {
            let now = SystemTime::now();
            let spent = {
                let mut quotas = self.quotas.lock().expect("no panic while counting");
                match quotas.spent(now) {
                    None => {
                        quotas.count(now);
                        None
                    }
                    Some(spent) => Some(spent),
                }
            };
            match spent {
                None => break,
                Some(spent) => {
                    let wait = spent.until.duration_since(now).unwrap_or_default();
                    if wait > patience {
                        return Err(spent);
                    }
                    spent.announce(
                        &mut self.announced.lock().expect("no panic while saying"),
                        "",
                    );
                    tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
                }
            }
        }
        if let Some(steady) = &self.steady {
            steady.until_ready().await;
        }
        // Last, so that a permit is not left to lapse while this sender keeps its own pace.
        if let Some(shared) = &self.shared {
            shared.take(patience).await?;
        }
        Ok(())
    }
}

/// Rolling-window counters, one a configured quota.
#[derive(Debug)]
pub struct Quotas {
    windows: Vec<Window>,
}

#[derive(Debug)]
struct Window {
    name: &'static str,
    length: u64,
    limit: u64,
    /// (unix second, attempts that second), oldest first, all within `length` of the newest.
    seconds: VecDeque<(u64, u32)>,
    total: u64,
}

impl Quotas {
    pub fn new(limits: &Limits, history: &History) -> Quotas {
        let windows = limits
            .quotas()
            .map(|(name, length, limit)| Window {
                name,
                length,
                limit: limit.into(),
                seconds: VecDeque::new(),
                total: 0,
            })
            .collect();
        let mut quotas = Quotas { windows };
        for (&second, &count) in history {
            for window in &mut quotas.windows {
                window.add(second, count);
            }
        }
        quotas
    }

    /// The quota that is spent at `now`, if one is, and until when.
    pub fn spent(&mut self, now: SystemTime) -> Option<QuotaSpent> {
        let now = unix_seconds(now);
        self.windows
            .iter_mut()
            .filter_map(|window| {
                window.expire(now);
                (window.total >= window.limit).then(|| QuotaSpent {
                    window: window.name,
                    until: window.frees_up(),
                })
            })
            .max_by_key(|spent| spent.until)
    }

    /// Counts one message sent at `now`.
    pub fn count(&mut self, now: SystemTime) {
        let now = unix_seconds(now);
        for window in &mut self.windows {
            window.add(now, 1);
        }
    }

    /// What each quota has left at `now`: (window, limit, left).
    pub fn left(&mut self, now: SystemTime) -> Vec<(&'static str, u64, u64)> {
        let now = unix_seconds(now);
        self.windows
            .iter_mut()
            .map(|window| {
                window.expire(now);
                (
                    window.name,
                    window.limit,
                    window.limit.saturating_sub(window.total),
                )
            })
            .collect()
    }
}

impl Window {
    fn add(&mut self, second: u64, count: u32) {
        match self.seconds.back_mut() {
            Some((last, n)) if *last == second => *n += count,
            _ => self.seconds.push_back((second, count)),
        }
        self.total += u64::from(count);
        self.expire(second);
    }

    /// Forgets what fell out of the window ending at `now`.
    fn expire(&mut self, now: u64) {
        while let Some(&(second, count)) = self.seconds.front() {
            if second + self.length > now {
                break;
            }
            self.seconds.pop_front();
            self.total -= u64::from(count);
        }
    }

    /// When the oldest counted message leaves the window.
    fn frees_up(&self) -> SystemTime {
        let oldest = self.seconds.front().map_or(0, |&(second, _)| second);
        UNIX_EPOCH + Duration::from_secs(oldest + self.length)
    }
}

pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests;
