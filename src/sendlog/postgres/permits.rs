//! The campaign's pace and quotas, kept in the database for all its senders together: each
//! sender asks for [`Permits`] a few at a time (a second's worth), on a connection of its own,
//! and the database grants what the campaign's windows have left, by second of its clock.
//!
//! Why this holds: a grant is counted in the second `s` of the database's clock in which it
//! was made, between the request's sending and its answer; its permits lapse one second after
//! the request was sent ([`LIFETIME`]). So every message of a grant counted in second `s`
//! leaves in `[s - rtt, s + 2)`, and the messages of any `L` seconds come from grants of at
//! most `L + 2` seconds. A quota of `L` seconds is therefore checked over `L + 2` seconds, and
//! no `L` seconds ever hold more than it, whatever the number of senders. The rate is checked
//! second by second: any `T` seconds hold at most `rate × (T + 2)`; a rate that is no whole
//! number a second, over the `W` seconds that make it one (see [`rate_window`]): at most
//! `rate × (T + 1 + W)`. Grants are made one at a
//! time under an advisory lock, so two senders never both take the last permits. Permits
//! granted and not spent still count: a sender that dies costs at most a second's worth.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::{Client, Transaction};

use super::errors::describe;
use super::schema::LOCK_CLASS;
use super::{PgTarget, connect};
use crate::ratelimit::{LIFETIME, Limits, MARGIN, Permits, QuotaSpent};

/// A window the database checks: its name, its length in seconds, and how many permits it
/// may grant in that length.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    name: &'static str,
    length: i64,
    limit: i64,
}

/// The window of the rate.
const RATE: &str = "rate";

/// The windows that keep `limits` for grants that are spent within two seconds of being
/// counted: each quota over its length and two seconds more; the rate over a second (or, below
/// one a second, over the seconds one message needs).
fn windows(limits: &Limits) -> Vec<Window> {
    let margin = MARGIN.as_secs() as i64;
    let mut windows: Vec<Window> = limits
        .quotas()
        .map(|(name, length, limit)| Window {
            name,
            length: length as i64 + margin,
            limit: limit.into(),
        })
        .collect();
    if let Some(rate) = limits.rate.filter(|rate| *rate > 0.0) {
        let (length, limit) = rate_window(rate);
        windows.push(Window {
            name: RATE,
            length,
            limit,
        });
    }
    windows
}

/// The longest the rate's window may be stretched to hold a whole number of messages.
const RATE_STRETCH: i64 = 10;

/// The rate's window, as whole seconds and whole messages: the shortest that holds one
/// message at least and keeps the rate to within 1 % (1.5 a second is 3 in 2 s, not 1 in 1),
/// else the one closest to it within [`RATE_STRETCH`] times that. Never over the rate; a
/// longer window only lets its messages come closer together inside it.
fn rate_window(rate: f64) -> (i64, i64) {
    let shortest = (1.0 / rate).ceil().max(1.0) as i64;
    let limit = |length: i64| ((rate * length as f64).floor() as i64).max(1);
    let kept = |length: i64| limit(length) as f64 / length as f64;
    let lengths = shortest..=shortest * RATE_STRETCH;
    let length = lengths
        .clone()
        .find(|&length| kept(length) >= rate * 0.99)
        .or_else(|| lengths.max_by(|a, b| kept(*a).total_cmp(&kept(*b))))
        .unwrap_or(shortest);
    (length, limit(length))
}

/// When the second `frees` of the database's clock comes, told by this host's clock, which may
/// differ from the database's: `now` (the database's) plus however long that is.
fn here(frees: i64, now: i64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(u64::try_from(frees - now).unwrap_or(0))
}

/// What granting this sender permits needs: the connection thread's runtime, where the
/// granter runs beside the renewals, and where to connect.
pub(super) struct Granting {
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) target: PgTarget,
    pub(super) campaign: i32,
}

/// Starts granting permits for `limits` to this sender, when they ask the database for
/// anything; the granter ends with the connection thread's runtime, when the log is dropped.
pub(super) fn start(granting: &Granting, limits: &Limits) -> Option<Arc<Permits>> {
    if windows(limits).is_empty() {
        return None;
    }
    let shared = Arc::new(Permits::new(limits));
    let (target, campaign) = (granting.target.clone(), granting.campaign);
    let permits = Arc::clone(&shared);
    granting.runtime.spawn(grant(target, campaign, permits));
    Some(shared)
}

/// A connection of the granter's own: a grant must not wait behind a batch, nor a renewal
/// behind a grant. A grant's transaction lasts milliseconds; one cut off midway must not keep
/// the others' grants waiting on its lock for long. Tries until it has one.
async fn granting_connection(target: &PgTarget) -> Client {
    loop {
        match connect(target).await {
            Ok(client)
                if client
                    .batch_execute("SET idle_in_transaction_session_timeout = 1000")
                    .await
                    .is_ok() =>
            {
                return client;
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Grants `permits` to this sender whenever its connections want some, until aborted. A grant
/// that fails or is late grants none: the sender waits (and asks again) rather than guess.
/// A connection that ends (an administrator, a failover, a timeout) is made again: the
/// sender's lease and batches go on without it, and it must not wait for permits forever.
async fn grant(target: PgTarget, campaign: i32, permits: Arc<Permits>) {
    let log = target.shown.clone();
    let windows = windows(permits.limits());
    let wanted = i64::from(permits.grant_size());
    let mut client = granting_connection(&target).await;
    while let Err(problem) = count_uncounted(&mut client, campaign).await {
        tracing::warn!(log, %problem, "what the campaign sent without permits is not counted yet");
        tokio::time::sleep(Duration::from_secs(1)).await;
        client = granting_connection(&target).await;
    }
    loop {
        permits.wanted().await;
        if client.is_closed() {
            client = granting_connection(&target).await;
        }
        let asked = Instant::now();
        let granting = take(&mut client, campaign, wanted, &windows);
        let (count, spent) = match tokio::time::timeout(LIFETIME, granting).await {
            Ok(Ok(granted)) => granted,
            Ok(Err(e)) => {
                tracing::warn!(log, error = %describe(&e), "no permits could be granted");
                (0, None)
            }
            Err(_) => (0, None),
        };
        permits.granted(u32::try_from(count).unwrap_or(0), asked, spent);
        if count == 0 {
            // Spent, or the database is away: ask again a little later, not in a loop.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Counts what the campaign sent in the last day without permits (see [`count_sends`]), before
/// this sender's first grant: it reads a day of records, which a grant's second may not hold.
async fn count_uncounted(client: &mut Client, campaign: i32) -> Result<(), String> {
    let counting = async {
        let transaction = client.transaction().await?;
        lock_grants(&transaction, campaign).await?;
        count_sends(&transaction, campaign, Sends::WithoutPermits).await?;
        transaction.commit().await
    };
    match tokio::time::timeout(UNCOUNTED_TIMEOUT, counting).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no answer in {UNCOUNTED_TIMEOUT:?}")),
    }
}

/// Takes the campaign's grants' lock until `transaction` ends: grants, and counts of sends
/// without permits, are made one at a time, so two senders never both take the last permits.
async fn lock_grants(
    transaction: &Transaction<'_>,
    campaign: i32,
) -> Result<(), tokio_postgres::Error> {
    // The second key is the campaign's id negated: fencing takes the id itself.
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&LOCK_CLASS, &-campaign],
        )
        .await
        .map(drop)
}

/// How long counting what was sent without permits may take before it is tried again, on a
/// new connection.
const UNCOUNTED_TIMEOUT: Duration = Duration::from_secs(30);

/// One grant: up to `wanted` permits, what every window has left, counted in the current
/// second. When none is left, which quota is spent and until when.
async fn take(
    client: &mut Client,
    campaign: i32,
    wanted: i64,
    windows: &[Window],
) -> Result<(i64, Option<QuotaSpent>), tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    lock_grants(&transaction, campaign).await?;
    let now: i64 = transaction
        .query_one(
            "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint",
            &[],
        )
        .await?
        .get(0);
    let mut room = wanted;
    let mut spent: Option<QuotaSpent> = None;
    for window in windows {
        let row = transaction
            .query_one(
                "SELECT coalesce(sum(granted), 0)::bigint, min(second) FROM missive.permits
                 WHERE campaign = $1 AND second > $2::bigint - $3::bigint",
                &[&campaign, &now, &window.length],
            )
            .await?;
        let (granted, oldest): (i64, Option<i64>) = (row.get(0), row.get(1));
        let left = (window.limit - granted).max(0);
        room = room.min(left);
        // The rate is a pace, waited for however slow (as the sender's own): only a quota is
        // spent for a while, and may stop a run that may not wait that long.
        if left == 0 && window.name != RATE {
            let until = here(oldest.unwrap_or(now) + window.length, now);
            if spent.is_none_or(|spent| spent.until < until) {
                spent = Some(QuotaSpent {
                    window: window.name,
                    until: until.max(SystemTime::now()),
                });
            }
        }
    }
    if room > 0 {
        transaction
            .execute(
                "INSERT INTO missive.permits (campaign, second, granted) VALUES ($1, $2, $3)
                 ON CONFLICT (campaign, second)
                 DO UPDATE SET granted = permits.granted + excluded.granted",
                &[&campaign, &now, &i32::try_from(room).unwrap_or(i32::MAX)],
            )
            .await?;
    }
    // What no window can count any more.
    transaction
        .execute(
            "DELETE FROM missive.permits WHERE campaign = $1 AND second < $2::bigint - 86460",
            &[&campaign, &now],
        )
        .await?;
    transaction.commit().await?;
    Ok((room, spent))
}

/// Whose sends of the last day [`count_sends`] counts as permits spent.
#[derive(Debug, Clone, Copy)]
pub(super) enum Sends {
    /// Every one: a file's, as `log import` writes its records (see `import`).
    All,
    /// Those made without permits, before any sender of this campaign asked for one: limits
    /// set on a campaign that sent without them, a database migrated from before permits
    /// (schema 2), must not ignore the day's sends. Each sender's own quotas count them (its
    /// replay does), but the campaign's would let each sender send what is left again. Only
    /// when no permit is on record: once one is, every attempt since asked for one, and
    /// counting its record too would spend it twice. Nor the attempts of the senders at work:
    /// a sender claims its people (writes their attempts) before it asks for their permits, so
    /// senders starting together would count each other's claims, and the permits then
    /// granted for them, twice; what they send has its permits (or they have no limits: not
    /// counted). The senders' start is the database's clock, an attempt's time its sender's: a
    /// host's clock behind the database's may have a few claims counted twice. (Limits set
    /// again on the day they were dropped: the sends between are not counted.) Run under the
    /// grants' lock, so that two senders count them once.
    WithoutPermits,
}

/// Adds to the campaign's permits, by second, what its attempts of the last day (and the two
/// seconds more a quota is checked over) spent, as a sender's replay counts them: attempts
/// less those withdrawn; `which` says whose.
pub(super) async fn count_sends(
    transaction: &Transaction<'_>,
    campaign: i32,
    which: Sends,
) -> Result<u64, tokio_postgres::Error> {
    let without_permits = matches!(which, Sends::WithoutPermits);
    transaction
        .execute(SENDS, &[&campaign, &without_permits])
        .await
}

/// See [`count_sends`]; `$2`: only [`Sends::WithoutPermits`].
const SENDS: &str = "
    INSERT INTO missive.permits (campaign, second, granted)
    SELECT $1, second, spent FROM (
        SELECT extract(epoch FROM date_trunc('second', at))::bigint AS second,
               (count(*) FILTER (WHERE event = 'attempt')
                - count(*) FILTER (WHERE event = 'withdrawn'))::integer AS spent
        FROM missive.records
        WHERE campaign = $1 AND at > now() - interval '86402 seconds'
          AND event IN ('attempt', 'withdrawn')
          AND (NOT $2 OR at < coalesce((SELECT min(started) FROM missive.senders
                                        WHERE campaign = $1 AND lease_until > now()), now()))
        GROUP BY 1
    ) AS seconds
    WHERE spent > 0
      AND (NOT $2 OR NOT EXISTS (SELECT 1 FROM missive.permits WHERE campaign = $1))
    ON CONFLICT (campaign, second) DO UPDATE SET granted = permits.granted + excluded.granted";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_spent_by_the_databases_clock_frees_as_long_after_by_this_hosts() {
        // A database whose clock reads a time long past (or a host far ahead of it).
        let database_now = 1_000_000_000;
        let wait = here(database_now + 30, database_now)
            .duration_since(SystemTime::now())
            .expect("in the future");
        assert!(
            (29..=30).contains(&wait.as_secs()),
            "a quota that frees in 30 s frees in {wait:?} here"
        );
        assert!(here(database_now - 5, database_now) <= SystemTime::now() + Duration::from_secs(1));
    }

    #[test]
    fn quotas_are_checked_over_two_seconds_more_and_the_rate_by_the_second() {
        let limits = Limits {
            rate: Some(20.0),
            per_minute: Some(120),
            ..Limits::default()
        };
        let names: Vec<(&str, i64, i64)> = windows(&limits)
            .iter()
            .map(|w| (w.name, w.length, w.limit))
            .collect();
        assert_eq!(names, [("minute", 62, 120), ("rate", 1, 20)]);
        let slow = Limits {
            rate: Some(0.25),
            ..Limits::default()
        };
        assert_eq!(windows(&slow)[0].length, 4);
        assert_eq!(windows(&slow)[0].limit, 1);
        // Whole seconds and whole messages, the rate kept: 1.5 is 3 in 2 s, 0.4 is 2 in 5 s.
        assert_eq!(rate_window(1.5), (2, 3));
        assert_eq!(rate_window(0.4), (5, 2));
        assert_eq!(rate_window(2.7), (10, 27));
        // No whole number within 1 %: the closest, never over.
        let (length, limit) = rate_window(std::f64::consts::PI);
        assert_eq!((length, limit), (8, 25));
        assert_eq!(rate_window(0.0125), (80, 1));
        assert!(windows(&Limits::default()).is_empty());
    }
}
