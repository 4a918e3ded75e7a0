//! The log's records as rows, and each person's state beside them.
//!
//! A batch is written in one statement (one transaction): its attempts claim their people in
//! `missive.people` and its outcomes are brought into their state, in one `INSERT … ON
//! CONFLICT DO UPDATE … WHERE` (a claim takes only people not sent or failed, not deferred to
//! later, and not held by another sender whose lease is live), and the records are inserted:
//! the attempts claimed, and every outcome. It says which attempts it wrote; one not claimed
//! is refused: nothing is written for it, and the engine sends nothing for that person.
//!
//! Start-up and `status` read the people back (see `people`).

use std::collections::HashSet;
use std::time::SystemTime;

use tokio_postgres::{Client, Statement};

use super::errors::{database_error, timely};
use crate::sendlog::{Record, SendLogError, parse_timestamp};

/// The statement a session prepares once.
pub(super) struct Statements {
    write: Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &Client, log: &str) -> Result<Statements, SendLogError> {
        let error = |e: tokio_postgres::Error| database_error(log, &e);
        Ok(Statements {
            write: client.prepare(WRITE).await.map_err(error)?,
        })
    }
}

/// Writes `records` in order, in one transaction, for the sender `sender`: returns the
/// positions of the attempts refused (their people held by another sender, or done), for
/// which nothing was written. `statements` counts the statements sent.
///
/// Two senders' batches can still cross where the statement's first locks cannot order them
/// (people new to the table, a batch of two statements). The database then undoes one of the
/// two whole, and that one is written again, after a pause drawn at random so that the two do
/// not cross again in step.
///
/// Each try has `each` to be answered in: a database that answers every try, however many, is
/// not unreachable.
pub(super) async fn append(
    client: &mut Client,
    prepared: &Statements,
    (campaign, sender): (i32, i64),
    records: &[Record],
    (log, each): (&str, std::time::Duration),
    statements: &mut u64,
) -> Result<Vec<usize>, SendLogError> {
    let mut tries = 1;
    loop {
        let written = append_once(
            client,
            prepared,
            (campaign, sender),
            records,
            log,
            statements,
        );
        let written = tokio::time::timeout(each, written)
            .await
            .unwrap_or_else(|_| {
                Err(SendLogError::DatabaseUnreachable {
                    log: log.to_owned(),
                    problem: format!("no answer in {each:?}, a lease's length"),
                })
            });
        match written {
            Err(SendLogError::DatabaseCrossed { .. }) if tries < CROSSED_TRIES => {
                tracing::debug!(
                    log,
                    tries,
                    "a batch crossed another sender's: writing it again"
                );
                let pause = fastrand::u64(5..=50) * tries;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                tries += 1;
            }
            result => return result,
        }
    }
}

/// How many times a batch is written before a crossing is reported (and the run stops,
/// exit 75): crossings are rare, and each undoes only the batch's own writes.
const CROSSED_TRIES: u64 = 8;

/// [`append`], once.
async fn append_once(
    client: &mut Client,
    prepared: &Statements,
    (campaign, sender): (i32, i64),
    records: &[Record],
    log: &str,
    statements: &mut u64,
) -> Result<Vec<usize>, SendLogError> {
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    let segments = segments(records);
    if segments.len() == 1 {
        *statements += 1;
        return write_segment(&*client, prepared, (campaign, sender), records, log).await;
    }
    let transaction = client.transaction().await.map_err(error)?;
    // BEGIN, a statement a segment, COMMIT.
    *statements += 2 + segments.len() as u64;
    let refused = append_within(&transaction, prepared, (campaign, sender), records, log).await?;
    timely(log, async { transaction.commit().await.map_err(error) }).await?;
    Ok(refused)
}

/// As [`append`], inside a transaction the caller holds (and commits): an import writes a
/// whole file's records in one.
pub(super) async fn append_within(
    transaction: &tokio_postgres::Transaction<'_>,
    prepared: &Statements,
    (campaign, sender): (i32, i64),
    records: &[Record],
    log: &str,
) -> Result<Vec<usize>, SendLogError> {
    let mut refused = Vec::new();
    for segment in segments(records) {
        let at = segment.start;
        let here = &records[segment];
        let refused_here =
            write_segment(transaction, prepared, (campaign, sender), here, log).await?;
        refused.extend(refused_here.into_iter().map(|refused| at + refused));
    }
    Ok(refused)
}

/// `records` cut into segments that each name a person once, so that one statement never
/// claims or updates a person twice (which the database refuses), and a person's records
/// apply in order. A run's batch is one segment (one statement, its own transaction) but for
/// an attempt withdrawn in the same batch.
fn segments(records: &[Record]) -> Vec<std::ops::Range<usize>> {
    let mut segments = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let mut named = HashSet::new();
        let length = records[start..]
            .iter()
            .take_while(|record| named.insert(record.rcpt.as_str()))
            .count();
        segments.push(start..start + length);
        start += length;
    }
    segments
}

/// Claims the people of `records`' attempts, writes the records claimed and the outcomes, and
/// brings the people's state in step, in one statement; the positions of the attempts refused.
async fn write_segment(
    client: &impl tokio_postgres::GenericClient,
    prepared: &Statements,
    (campaign, sender): (i32, i64),
    records: &[Record],
    log: &str,
) -> Result<Vec<usize>, SendLogError> {
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    let mut columns = Columns::with_capacity(records.len());
    for record in records {
        columns.push(record);
    }
    let written = timely(log, async {
        client
            .query(
                &prepared.write,
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
                    &sender,
                ],
            )
            .await
            .map_err(error)
    })
    .await?;
    // The people written whose record is an attempt are the people claimed (a segment names
    // each person once).
    let claimed: HashSet<&str> = written.iter().map(|row| row.get(0)).collect();
    Ok((0..records.len())
        .filter(|&at| is_attempt(&records[at]) && !claimed.contains(records[at].rcpt.as_str()))
        .collect())
}

fn is_attempt(record: &Record) -> bool {
    matches!(record.event, crate::sendlog::Event::Attempt { .. })
}

/// A batch as the columns of the statements' arrays.
struct Columns<'a> {
    at: Vec<Option<SystemTime>>,
    event: Vec<&'static str>,
    rcpt: Vec<&'a str>,
    message_id: Vec<&'a str>,
    letter: Vec<Option<&'a str>>,
    reply: Vec<Option<&'a str>>,
    retry_at: Vec<Option<SystemTime>>,
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

/// One segment of a batch, in one statement. The attempt is the claim: a person is taken
/// unless sent or failed, deferred to a retry still to come (by the database's clock, with a
/// minute's grace for the senders' own), or attempted by another sender whose lease is live;
/// an attempt whose sender's lease ran out is in doubt, and taken over (resent with the same
/// Message-ID). An outcome goes into its person's state: sent and failed whoever held them
/// (they are what happened), deferred and withdrawn only by the sender holding them (a
/// withdrawn attempt puts the person back where they stood, and lets them go). The records
/// follow in the order given, so `seq` keeps the log's order: the attempts claimed, the
/// outcomes, and a withdrawn record only where it withdrew something. Returns the people
/// whose state was written (a segment names each person once): of the attempts, those are
/// the people claimed.
///
/// The claims, the outcomes and the withdrawals are one upsert, its rows in the order of
/// their addresses: each person's row is locked as it is written, and every batch locks its
/// people in that one order, so two senders' batches naming each other's people (one
/// claiming people the other writes outcomes for) wait for each other in turn rather than
/// each hold what the other waits for. (Three upserts each in that order did not: the
/// second's locks cross the first's; locking everyone first cost a lock, and its WAL, a
/// person.) Each person is found by key: a plan made on empty tables must not read the
/// campaign's people whole. What the upsert sets for a person is the `CASE` of their
/// record's event (`excluded.status`).
const WRITE: &str = "
    WITH batch AS (
        SELECT * FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::text[], $8::timestamptz[], $9::text[])
             WITH ORDINALITY AS b (at, event, rcpt, message_id, letter, reply, retry_at, via, n)
    ),
    written AS (
        INSERT INTO missive.people AS p
            (campaign, rcpt, status, message_id, owner, attempts, first_attempt, last_attempt,
             before, letter, retry_at, reply, via)
        SELECT $1, rcpt, event, message_id, CASE WHEN event = 'attempt' THEN $10::bigint END,
               CASE WHEN event = 'attempt' THEN 1 ELSE 0 END,
               CASE WHEN event = 'attempt' THEN at END, CASE WHEN event = 'attempt' THEN at END,
               CASE WHEN event = 'attempt' THEN 'withdrawn' END, letter, retry_at, reply, via
        FROM batch
        -- A withdrawal writes only over an attempt (and never makes a person's row).
        WHERE event <> 'withdrawn' OR (
            SELECT q.status FROM missive.people q WHERE q.campaign = $1 AND q.rcpt = batch.rcpt
        ) = 'attempt'
        ORDER BY rcpt
        ON CONFLICT (campaign, rcpt) DO UPDATE
        SET status = CASE excluded.status
                WHEN 'attempt' THEN 'attempt'
                WHEN 'withdrawn' THEN coalesce(p.before, 'withdrawn')
                ELSE excluded.status END,
            message_id = CASE WHEN excluded.status = 'attempt' THEN excluded.message_id
                ELSE p.message_id END,
            owner = CASE excluded.status
                WHEN 'attempt' THEN $10 WHEN 'withdrawn' THEN NULL ELSE p.owner END,
            attempts = CASE excluded.status
                WHEN 'attempt' THEN p.attempts + 1
                WHEN 'withdrawn' THEN greatest(p.attempts - 1, 0)
                ELSE p.attempts END,
            first_attempt = CASE WHEN excluded.status = 'attempt'
                THEN coalesce(p.first_attempt, excluded.first_attempt) ELSE p.first_attempt END,
            last_attempt = CASE WHEN excluded.status = 'attempt' THEN excluded.last_attempt
                ELSE p.last_attempt END,
            before = CASE WHEN excluded.status = 'attempt' THEN p.status ELSE p.before END,
            letter = CASE WHEN excluded.status = 'attempt' THEN excluded.letter
                ELSE p.letter END,
            retry_at = CASE excluded.status
                WHEN 'attempt' THEN NULL WHEN 'withdrawn' THEN p.retry_at
                ELSE excluded.retry_at END,
            reply = CASE WHEN excluded.status IN ('attempt', 'withdrawn') THEN p.reply
                ELSE excluded.reply END,
            via = CASE WHEN excluded.status IN ('attempt', 'withdrawn') THEN p.via
                ELSE excluded.via END
        WHERE CASE excluded.status
            WHEN 'attempt' THEN
                p.status NOT IN ('sent', 'failed')
                AND NOT (p.status = 'deferred' AND p.retry_at > now() + interval '1 minute')
                AND NOT (p.status = 'attempt' AND p.owner <> $10 AND EXISTS (
                    SELECT 1 FROM missive.senders s
                    WHERE s.id = p.owner AND s.lease_until > now()))
            WHEN 'withdrawn' THEN p.status = 'attempt' AND p.owner = $10
            ELSE p.status NOT IN ('sent', 'failed')
                AND (excluded.status IN ('sent', 'failed') OR p.owner = $10) END
        RETURNING rcpt
    ),
    recorded AS (
        INSERT INTO missive.records
            (campaign, at, event, rcpt, message_id, letter, reply, retry_at, via)
        SELECT $1, at, event, rcpt, message_id, letter, reply, retry_at, via
        FROM batch
        WHERE event NOT IN ('attempt', 'withdrawn') OR rcpt IN (SELECT rcpt FROM written)
        ORDER BY n
    )
    SELECT rcpt FROM written";
