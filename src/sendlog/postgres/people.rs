//! Reading a campaign back: its people, one row each, into the same [`Replay`] the file log
//! builds, streamed (never the whole history of records), and the quotas' history of the
//! last day beside them. What start-up and `status` read.

use std::time::SystemTime;

use futures_util::TryStreamExt;
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::Type;

use super::errors::{database_error, timely};
use crate::sendlog::replay::{Loading, Person};
use crate::sendlog::{Replay, SendLogError, Status};

/// Streams `campaign`'s people, one row each, into a replay, while `beside` (another
/// connection) reads the quotas' history: the server sums the day's attempts while the people
/// stream here, instead of after.
pub(super) async fn replay(
    client: &Client,
    beside: &Client,
    campaign: i32,
    log: &str,
) -> Result<Replay, SendLogError> {
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    // The quotas count every attempt of the last day, not only each person's latest.
    let since = SystemTime::now() - crate::ratelimit::HISTORY;
    let history = timely(log, async {
        beside
            .query(HISTORY, &[&campaign, &since])
            .await
            .map_err(error)
    });
    let (mut replay, seconds) = tokio::try_join!(people(client, campaign, log), history)?;
    for row in &seconds {
        let second = u64::try_from(row.get::<_, i64>(0)).unwrap_or_default();
        let attempts = u32::try_from(row.get::<_, i64>(1)).unwrap_or_default();
        let withdrawn = u32::try_from(row.get::<_, i64>(2)).unwrap_or_default();
        replay.add_attempts(second, attempts, withdrawn);
    }
    replay.finish();
    Ok(replay)
}

/// `campaign`'s people, one row each, in a replay (not finished).
async fn people(client: &Client, campaign: i32, log: &str) -> Result<Replay, SendLogError> {
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    let mut replay = Replay::default();
    let mut loading = Loading::default();
    // A COPY streams the rows as the server reads them, while they are taken in here, where a
    // cursor's chunks left each side waiting for the other in turn; and in binary, nothing is
    // parsed from text. (A COPY takes no parameters: the campaign's row id is a number.)
    let copy = format!("COPY ({PEOPLE} WHERE campaign = {campaign}) TO STDOUT (FORMAT binary)");
    let stream = timely(log, async {
        client.copy_out(copy.as_str()).await.map_err(error)
    })
    .await?;
    let rows = BinaryCopyOutStream::new(stream, &PEOPLE_TYPES);
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = timely(log, async { rows.try_next().await.map_err(error) }).await? {
        let status = match row.try_get::<&str>(1).map_err(error)? {
            "sent" => Status::Sent,
            "failed" => Status::Failed,
            "deferred" => Status::Deferred,
            "attempt" => Status::InDoubt,
            _ => Status::Pending,
        };
        let attempts = row.try_get::<i32>(2).map_err(error)?;
        replay.apply_person(
            &Person {
                rcpt: row.try_get(0).map_err(error)?,
                status,
                attempts: u32::try_from(attempts).unwrap_or_default(),
                first_attempt: row.try_get(3).map_err(error)?,
                last_attempt: row.try_get(4).map_err(error)?,
                retry_at: row.try_get(5).map_err(error)?,
                letter: row.try_get(6).map_err(error)?,
                reply: row.try_get(7).map_err(error)?,
                via_fallback: row.try_get(8).map_err(error)?,
            },
            &mut loading,
        );
    }
    replay.loaded(&mut loading);
    Ok(replay)
}

/// How many of `campaign`'s people have no final outcome: held by a sender (in doubt, or at
/// work), deferred, or put back. One pass over the campaign's people, once at the end of a run
/// that met others' people: an index for it would cost every claim and outcome its upkeep.
pub(super) async fn unsettled(
    client: &Client,
    campaign: i32,
    log: &str,
) -> Result<u64, SendLogError> {
    let row = timely(log, async {
        client
            .query_one(UNSETTLED, &[&campaign])
            .await
            .map_err(|e| database_error(log, &e))
    })
    .await?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
}

const UNSETTLED: &str = "
    SELECT count(*) FROM missive.people
    WHERE campaign = $1 AND status NOT IN ('sent', 'failed')";

/// A campaign's attempts and withdrawals a second since `$2`. Grouped by the truncated time,
/// made a number once a second rather than once a record (`extract` makes a `numeric`, slow:
/// a third of the query over a million attempts).
const HISTORY: &str = "
    SELECT extract(epoch FROM second)::bigint, attempts, withdrawn
    FROM (
        SELECT date_trunc('second', at) AS second, count(*) FILTER (WHERE event = 'attempt')
                   AS attempts,
               count(*) FILTER (WHERE event = 'withdrawn') AS withdrawn
        FROM missive.records
        WHERE campaign = $1 AND at >= $2 AND event IN ('attempt', 'withdrawn')
        GROUP BY 1
    ) AS by_second";

/// A campaign's people, one row each (with `WHERE campaign = …`): a reply only where it is a
/// failure's (what `status` groups), whether the fallback relay took the message.
const PEOPLE: &str = "
    SELECT rcpt, status, attempts, first_attempt, last_attempt, retry_at, letter,
           CASE WHEN status = 'failed' THEN reply END, via IS NOT NULL
    FROM missive.people";

/// The types of [`PEOPLE`]'s columns, as a binary COPY needs them named.
const PEOPLE_TYPES: [Type; 9] = [
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::BOOL,
];
