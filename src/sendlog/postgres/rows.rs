//! The log's records as rows: a batch written as one `INSERT` of arrays, and a campaign's
//! records read back, a chunk at a time, into the same [`Replay`] the file log builds, through
//! the same fold (times come back as the file log writes them).

use std::borrow::Cow;

use tokio_postgres::{Client, Statement};

use super::errors::{database_error, timely};
use crate::sendlog::replay::Line;
use crate::sendlog::{Record, Replay, SendLogError, parse_timestamp};

/// Rows fetched at a time while replaying: a million records are never in memory at once.
const REPLAY_CHUNK: i32 = 4096;

/// Streams `campaign`'s records, in the order they were written, into a replay.
pub(super) async fn replay(
    client: &mut Client,
    campaign: i32,
    log: &str,
) -> Result<Replay, SendLogError> {
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    let mut replay = Replay::default();
    // A portal reads the rows a chunk at a time, in one snapshot.
    let transaction = client.transaction().await.map_err(error)?;
    let portal = timely(log, async {
        transaction.bind(SELECT, &[&campaign]).await.map_err(error)
    })
    .await?;
    loop {
        let rows = timely(log, async {
            transaction
                .query_portal(&portal, REPLAY_CHUNK)
                .await
                .map_err(error)
        })
        .await?;
        for row in &rows {
            let line = Line {
                at: Cow::Borrowed(row.get::<_, Option<&str>>(0).unwrap_or_default()),
                event: Cow::Borrowed(row.get(1)),
                rcpt: Cow::Borrowed(row.get(2)),
                letter: row.get::<_, Option<&str>>(3).map(Cow::Borrowed),
                reply: row.get::<_, Option<&str>>(4).map(Cow::Borrowed),
                retry_at: row.get::<_, Option<&str>>(5).map(Cow::Borrowed),
                via: row.get::<_, Option<&str>>(6).map(Cow::Borrowed),
            };
            replay
                .apply_fields(&line)
                .map_err(|problem| SendLogError::DatabaseFailed {
                    log: log.to_owned(),
                    problem: format!("a record of the table missive.records: {problem}"),
                })?;
        }
        if rows.len() < REPLAY_CHUNK as usize {
            break;
        }
    }
    transaction.commit().await.map_err(error)?;
    replay.finish();
    Ok(replay)
}

/// Inserts `records` in order with `insert` (a prepared [`INSERT`]), in one statement: one
/// transaction, committed on return.
pub(super) async fn insert(
    client: &Client,
    insert: &Statement,
    campaign: i32,
    records: &[Record],
    log: &str,
) -> Result<(), SendLogError> {
    let mut columns = Columns::with_capacity(records.len());
    for record in records {
        columns.push(record);
    }
    let inserted = timely(log, async {
        client
            .execute(
                insert,
                &[
                    &campaign,
                    &columns.at,
                    &columns.event,
                    &columns.rcpt,
                    &columns.message_id,
                    &columns.letter,
                    &columns.reply,
                    &columns.retry_at,
                    &columns.via,
                ],
            )
            .await
            .map_err(|e| database_error(log, &e))
    })
    .await?;
    if inserted != records.len() as u64 {
        return Err(SendLogError::DatabaseFailed {
            log: log.to_owned(),
            problem: format!("{inserted} of {} records were written", records.len()),
        });
    }
    Ok(())
}

/// A batch as the columns of the `INSERT`'s arrays.
struct Columns<'a> {
    at: Vec<Option<std::time::SystemTime>>,
    event: Vec<&'static str>,
    rcpt: Vec<&'a str>,
    message_id: Vec<&'a str>,
    letter: Vec<Option<&'a str>>,
    reply: Vec<Option<&'a str>>,
    retry_at: Vec<Option<std::time::SystemTime>>,
    via: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn with_capacity(n: usize) -> Columns<'a> {
        Columns {
            at: Vec::with_capacity(n),
            event: Vec::with_capacity(n),
            rcpt: Vec::with_capacity(n),
            message_id: Vec::with_capacity(n),
            letter: Vec::with_capacity(n),
            reply: Vec::with_capacity(n),
            retry_at: Vec::with_capacity(n),
            via: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, record: &'a Record) {
        let (event, letter, reply, retry_at, via) = record.event.parts();
        self.at.push(parse_timestamp(&record.at));
        self.event.push(event);
        self.rcpt.push(&record.rcpt);
        self.message_id.push(&record.message_id);
        self.letter.push(letter);
        self.reply.push(reply);
        self.retry_at.push(retry_at.and_then(parse_timestamp));
        self.via.push(via);
    }
}

/// A batch's rows, in the order given (the ordinality), so `seq` keeps the log's order.
pub(super) const INSERT: &str = "
    INSERT INTO missive.records
        (campaign, at, event, rcpt, message_id, letter, reply, retry_at, via)
    SELECT $1, at, event, rcpt, message_id, letter, reply, retry_at, via
    FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::timestamptz[], $9::text[])
         WITH ORDINALITY AS batch (at, event, rcpt, message_id, letter, reply, retry_at, via, n)
    ORDER BY n";

/// A campaign's records in order, times as the file log writes them (RFC 3339, UTC, seconds),
/// so the replay reads them as it reads a file's.
const SELECT: &str = r#"
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), event, rcpt, letter,
           reply, to_char(retry_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), via
    FROM missive.records WHERE campaign = $1 ORDER BY seq"#;
