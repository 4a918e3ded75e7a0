//! Moving a campaign in flight between a log file and a database: a file's records copied
//! into the database (import), and the database's copied into a file (export).
//!
//! An import writes the file's records through the same statement senders write with, as one
//! sender of its own, in one transaction: people are claimed and brought in step exactly as if
//! the run that wrote the file had written to the database, so a sent or failed person stays
//! final, a deferred one keeps its retry time and attempts, a withdrawn attempt stays
//! withdrawn, and an attempt without outcome is left in doubt, its owner's lease ended from
//! the start (so another sender resends it, with the same Message-ID, at once); what the file sent
//! in the last day spends the campaign's quotas there, for all its senders. It never mixes two
//! histories: a campaign the database already lists is refused unless its records begin with
//! the file's (the same file imported again: nothing is written). Senders at work on the
//! campaign there make it wait (their shared lock against the import's exclusive one).

use std::time::{Duration, SystemTime};

use tokio_postgres::Client;

use super::errors::{database_error, timely};
use super::permits::{self, Sends};
use super::rows::{self, Statements};
use super::schema::{self, LOCK_CLASS};
use super::{PgLog, PgTarget, connect, runtime, senders, stopped};
use crate::sendlog::{Event, Record, SendLogError, parse_timestamp, timestamp};

/// Records written to the database a statement's worth at a time.
const CHUNK: usize = 4096;

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// This many records were copied.
    Records(u64),
    /// The database's history of the campaign already begins with the file's: nothing was
    /// written.
    AlreadyThere,
}

impl PgLog {
    /// Copies a file log's `records` (in order) into `campaign`'s log at `target`, in one
    /// transaction (see `import.rs`): what was done, and the campaign row's uid. Refuses a
    /// database that holds another history of the campaign, and waits for senders at work.
    pub fn import(
        target: &PgTarget,
        campaign: &str,
        records: impl Iterator<Item = Result<Record, SendLogError>> + Send,
    ) -> Result<(Imported, String), SendLogError> {
        std::thread::scope(|scope| {
            let importer =
                scope.spawn(|| runtime(&target.shown)?.block_on(import(target, campaign, records)));
            importer.join().unwrap_or_else(|_| Err(stopped()))
        })
    }

    /// Passes `campaign`'s records at `target`, in order, to `write` (for a file log): how
    /// many. Refused while senders are at work on the campaign.
    pub fn export(
        target: &PgTarget,
        campaign: &str,
        mut write: impl FnMut(Record) -> Result<(), SendLogError> + Send,
    ) -> Result<u64, SendLogError> {
        std::thread::scope(|scope| {
            let exporter = scope
                .spawn(|| runtime(&target.shown)?.block_on(export(target, campaign, &mut write)));
            exporter.join().unwrap_or_else(|_| Err(stopped()))
        })
    }
}

/// Copies `records` (a file log's, in order) into `campaign`'s log at `target`: what was done,
/// and the campaign row's uid.
pub(super) async fn import(
    target: &PgTarget,
    campaign: &str,
    records: impl Iterator<Item = Result<Record, SendLogError>>,
) -> Result<(Imported, String), SendLogError> {
    let log = &target.shown;
    let mut client = connect(target).await?;
    timely(log, schema::migrate(&mut client, log)).await?;
    let row = timely(log, schema::campaign_row(&client, campaign, log)).await?;
    // A sender whose lease has already ended: what the file left in doubt may be taken over
    // as soon as the import commits, and an import killed midway (its writes undone) leaves
    // no live lease for `status`, `log export` and the senders to wait out. Nothing needs
    // the lease meanwhile: no sender works on the campaign while the import holds it.
    let sender = timely(
        log,
        senders::register(&client, row.id, Duration::ZERO, None, log),
    )
    .await?;
    let statements = timely(log, Statements::prepare(&client, log)).await?;
    let ids = (row.id, sender);
    let imported = write(&mut client, &statements, ids, campaign, records, log).await?;
    Ok((imported, row.uid))
}

async fn write(
    client: &mut Client,
    statements: &Statements,
    (id, sender): (i32, i64),
    campaign: &str,
    records: impl Iterator<Item = Result<Record, SendLogError>>,
    log: &str,
) -> Result<Imported, SendLogError> {
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    let transaction = client.transaction().await.map_err(error)?;
    alone(&transaction, id, log, campaign).await?;
    let held: i64 = transaction
        .query_one(
            "SELECT count(*) FROM missive.records WHERE campaign = $1",
            &[&id],
        )
        .await
        .map_err(error)?
        .get(0);
    if held > 0 {
        return same_history(&transaction, id, campaign, records, log).await;
    }
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut written = 0u64;
    let mut records = records.peekable();
    while let Some(record) = records.next() {
        chunk.push(record?);
        if chunk.len() < CHUNK && records.peek().is_some() {
            continue;
        }
        // Each statement has the database's answer timeout (see `rows`); the chunk, a few
        // statements or thousands (records naming one person twice are split), none of its
        // own: a slow database that answers each in time would otherwise fail a chunk for
        // their sum, and a large file's import with it.
        let refused =
            rows::append_within(&transaction, statements, (id, sender), &chunk, log).await?;
        if let Some(&first) = refused.first() {
            let record = &chunk[first];
            return Err(other_history(
                log,
                campaign,
                format!(
                    "the file's attempt to {} at {} cannot follow what it lists before (a \
                     retry before its time); nothing was imported",
                    record.rcpt, record.at
                ),
            ));
        }
        written += chunk.len() as u64;
        chunk.clear();
    }
    // What the file sent in the last day counts in the quotas the database keeps for all the
    // campaign's senders, as it counts in each one's own (see `permits`).
    timely(log, async {
        permits::count_sends(&transaction, id, Sends::All)
            .await
            .map_err(error)
    })
    .await?;
    timely(log, async { transaction.commit().await.map_err(error) }).await?;
    Ok(Imported::Records(written))
}

/// Whether the database's records of the campaign begin with `records`: then the file was
/// imported already; otherwise the two histories are not one, and nothing is written.
async fn same_history(
    transaction: &tokio_postgres::Transaction<'_>,
    id: i32,
    campaign: &str,
    records: impl Iterator<Item = Result<Record, SendLogError>>,
    log: &str,
) -> Result<Imported, SendLogError> {
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    let portal = transaction.bind(RECORDS, &[&id]).await.map_err(error)?;
    let mut held = Vec::new().into_iter();
    for (number, record) in records.enumerate() {
        let record = record?;
        if held.len() == 0 {
            let rows = transaction
                .query_portal(&portal, CHUNK as i32)
                .await
                .map_err(error)?;
            held = rows.iter().map(from_row).collect::<Vec<_>>().into_iter();
        }
        match held.next() {
            Some(there) if same(&there, &record) => {}
            found => {
                let problem = match found {
                    Some(there) => format!(
                        "its record {} is {there:?}, the file's is {record:?}",
                        number + 1
                    ),
                    None => format!("it holds {number} records, the file more"),
                };
                return Err(other_history(log, campaign, problem));
            }
        }
    }
    Ok(Imported::AlreadyThere)
}

/// Passes `campaign`'s records at `target`, in order, to `write`: how many.
pub(super) async fn export(
    target: &PgTarget,
    campaign: &str,
    write: &mut (dyn FnMut(Record) -> Result<(), SendLogError> + Send),
) -> Result<u64, SendLogError> {
    let log = &target.shown;
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    let mut client = connect(target).await?;
    let found = match timely(log, schema::readable(&client, log)).await? {
        true => timely(log, schema::find_campaign(&client, campaign, log)).await?,
        false => None,
    };
    let Some(id) = found else {
        return Err(SendLogError::NotALog {
            path: log.into(),
            problem: format!("the database holds no send log of campaign {campaign}"),
        });
    };
    if timely(log, senders::active_senders(&client, id, log)).await? > 0 {
        return Err(busy(log, campaign));
    }
    let transaction = client.transaction().await.map_err(error)?;
    // A sender that has just begun holds the campaign's lock (shared, see `schema::fence`)
    // before its lease shows: it may write while the records are read. Held exclusively for
    // the read, the lock keeps any sender from starting meanwhile.
    alone(&transaction, id, log, campaign).await?;
    let portal = transaction.bind(RECORDS, &[&id]).await.map_err(error)?;
    let mut count = 0;
    loop {
        let rows = timely(log, async {
            transaction
                .query_portal(&portal, CHUNK as i32)
                .await
                .map_err(error)
        })
        .await?;
        for row in &rows {
            write(from_row(row))?;
            count += 1;
        }
        if rows.len() < CHUNK {
            break;
        }
    }
    transaction.commit().await.map_err(error)?;
    Ok(count)
}

/// A campaign's records, in the order they were written.
const RECORDS: &str = "
    SELECT at, event, rcpt, message_id, letter, reply, retry_at, via
    FROM missive.records WHERE campaign = $1 ORDER BY seq";

fn from_row(row: &tokio_postgres::Row) -> Record {
    let time = |at: Option<SystemTime>| at.map(timestamp);
    let reply = || row.get::<_, Option<String>>(5).unwrap_or_default();
    let event = match row.get::<_, &str>(1) {
        "attempt" => Event::Attempt { letter: row.get(4) },
        "sent" => Event::Sent {
            reply: reply(),
            via: row.get(7),
        },
        "deferred" => Event::Deferred {
            reply: reply(),
            retry_at: time(row.get(6)),
        },
        "failed" => Event::Failed { reply: reply() },
        _ => Event::Withdrawn,
    };
    Record {
        at: time(row.get(0)).unwrap_or_default(),
        event,
        rcpt: row.get(2),
        message_id: row.get(3),
    }
}

/// The same record, its times compared as instants (a file may write them otherwise).
fn same(a: &Record, b: &Record) -> bool {
    let (event, letter, reply, retry_at, via) = a.event.parts();
    let (event_b, letter_b, reply_b, retry_at_b, via_b) = b.event.parts();
    parse_timestamp(&a.at) == parse_timestamp(&b.at)
        && (a.rcpt.as_str(), a.message_id.as_str()) == (b.rcpt.as_str(), b.message_id.as_str())
        && (event, letter, reply, via) == (event_b, letter_b, reply_b, via_b)
        && retry_at.and_then(parse_timestamp) == retry_at_b.and_then(parse_timestamp)
}

/// Takes the campaign's lock for the rest of `transaction`, which no sender may then hold
/// (each holds it shared for its connection's life, see `schema::fence`); `Locked` when one
/// does.
async fn alone(
    transaction: &tokio_postgres::Transaction<'_>,
    id: i32,
    log: &str,
    campaign: &str,
) -> Result<(), SendLogError> {
    let taken: bool = transaction
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1, $2)",
            &[&LOCK_CLASS, &id],
        )
        .await
        .map_err(|e| database_error(log, &e))?
        .get(0);
    match taken {
        true => Ok(()),
        false => Err(busy(log, campaign)),
    }
}

fn busy(log: &str, campaign: &str) -> SendLogError {
    SendLogError::Locked {
        path: format!("{log} (campaign {campaign})").into(),
        holder: " (senders are working on the campaign there)".into(),
    }
}

fn other_history(log: &str, campaign: &str, problem: String) -> SendLogError {
    SendLogError::OtherHistory {
        log: log.to_owned(),
        campaign: campaign.to_owned(),
        problem,
    }
}
