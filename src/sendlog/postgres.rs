//! The send log in PostgreSQL: the same records and the same meaning as the file log, in
//! tables one database shares between many campaigns (see `schema`), for organizations that send
//! from more than one machine. Not yet wired into the commands (`--log postgres://…` comes with
//! several senders sharing a campaign); this is the backend they will use.
//!
//! [`PgLog::open`] connects, makes or migrates the tables, takes the campaign's row (making it
//! on first use) and holds the campaign for the connection's life (an advisory lock, released by
//! the database when the connection ends, as the OS releases the file log's `flock`), then
//! streams the campaign's records into the same [`Replay`] the file log builds, a few thousand
//! rows at a time. [`SendLog::append`] writes a batch as one `INSERT` (one transaction), and
//! returns once it is committed.
//!
//! The client is async, the [`SendLog`] trait is not: the group-commit writer calls `append`
//! from a plain OS thread, and `send` opens its log from inside its single-threaded runtime,
//! where blocking on that runtime would deadlock and starting another would panic. So the
//! connection lives on a thread of its own, with a small runtime of its own; `open` and
//! `append` hand it work over a channel and wait for the answer, blocking only their caller's
//! thread, from any context, as file I/O does. It also keeps the database's round trips off the
//! thread that renders and sends.
//!
//! The campaign's identity in a database is its id: a campaign file with the same id pointed at
//! the same database resumes that campaign. The row draws a `uid` when it is made
//! ([`PgLog::campaign_uid`]) so that a campaign can remember which row it began with, as it
//! remembers its log file in `<id>.state.json`, and refuse a namesake's: that check belongs to
//! the commands, with the wiring.

mod errors;
mod schema;
mod target;

use errors::{database_error, describe};

pub use target::PgTarget;

use std::borrow::Cow;
use std::sync::mpsc as sync_channel;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls, Statement};

use super::replay::Line;
use super::{Event, Record, Replay, SendLog, SendLogError, parse_timestamp};

/// Rows fetched at a time while replaying: a million records are never in memory at once.
const REPLAY_CHUNK: i32 = 4096;

/// How long the database may take to answer one request (a batch, a chunk of the replay)
/// before it counts as unreachable: a database cut off by the network sends no reset.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A campaign's send log in a PostgreSQL database.
pub struct PgLog {
    /// `None` once dropped: closing it ends the connection's thread.
    requests: Option<mpsc::UnboundedSender<Append>>,
    thread: Option<JoinHandle<()>>,
    uid: String,
}

/// A batch for the connection's thread, and where to say whether it was committed.
struct Append {
    records: Vec<Record>,
    done: sync_channel::SyncSender<Result<(), SendLogError>>,
}

impl std::fmt::Debug for PgLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLog").field("uid", &self.uid).finish()
    }
}

impl PgLog {
    /// Opens `campaign`'s log in the database at `target`: connects, makes or migrates the
    /// tables, holds the campaign, and replays its records. Refuses a newer schema, and a
    /// campaign another missive holds ([`SendLogError::Locked`]).
    pub fn open(target: &PgTarget, campaign: &str) -> Result<(PgLog, Replay), SendLogError> {
        let (requests, incoming) = mpsc::unbounded_channel();
        let (opened, answer) = sync_channel::sync_channel(1);
        let (target, campaign) = (target.clone(), campaign.to_owned());
        let thread = std::thread::Builder::new()
            .name("missive-pglog".into())
            .spawn(move || serve(&target, &campaign, opened, incoming))
            .expect("the OS can start a thread");
        match answer.recv() {
            Ok(Ok((replay, uid))) => {
                let log = PgLog {
                    requests: Some(requests),
                    thread: Some(thread),
                    uid,
                };
                Ok((log, replay))
            }
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(_) => {
                let _ = thread.join();
                Err(stopped())
            }
        }
    }

    /// The identity the campaign's row drew when it was made: a campaign that remembers it can
    /// tell its own row from a namesake's.
    pub fn campaign_uid(&self) -> &str {
        &self.uid
    }
}

impl SendLog for PgLog {
    fn append(&mut self, records: &[Record]) -> Result<(), SendLogError> {
        let (done, answer) = sync_channel::sync_channel(1);
        let batch = Append {
            records: records.to_vec(),
            done,
        };
        let requests = self.requests.as_ref().ok_or_else(stopped)?;
        requests.send(batch).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

impl Drop for PgLog {
    fn drop(&mut self) {
        // Closing the channel ends the thread, which closes the connection (and so lets go of
        // the campaign) before we return.
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Opened = Result<(Replay, String), SendLogError>;

/// The connection's thread: opens, answers `opened`, then commits each batch until the log is
/// dropped.
fn serve(
    target: &PgTarget,
    campaign: &str,
    opened: sync_channel::SyncSender<Opened>,
    mut incoming: mpsc::UnboundedReceiver<Append>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let problem = format!("cannot start the database connection's runtime: {e}");
            let _ = opened.send(Err(SendLogError::DatabaseFailed {
                log: target.shown.clone(),
                problem,
            }));
            return;
        }
    };
    runtime.block_on(async {
        let session = match Session::open(target, campaign).await {
            Ok((session, replay)) => {
                let _ = opened.send(Ok((replay, session.uid.clone())));
                session
            }
            Err(error) => {
                let _ = opened.send(Err(error));
                return;
            }
        };
        while let Some(batch) = incoming.recv().await {
            let _ = batch.done.send(session.append(&batch.records).await);
        }
    });
}

/// One connection, holding one campaign.
struct Session {
    client: Client,
    log: String,
    campaign: i32,
    uid: String,
    insert: Statement,
}

impl Session {
    async fn open(target: &PgTarget, campaign: &str) -> Result<(Session, Replay), SendLogError> {
        let log = target.shown.clone();
        let error = |e: tokio_postgres::Error| database_error(&log, &e);
        let mut client = if target.tls {
            let (client, connection) = target
                .config
                .connect(target::tls_connector(target))
                .await
                .map_err(error)?;
            tokio::spawn(drive(connection));
            client
        } else {
            let (client, connection) = target.config.connect(NoTls).await.map_err(error)?;
            tokio::spawn(drive(connection));
            client
        };
        timely(&log, schema::migrate(&mut client, &log)).await?;
        let row = timely(&log, schema::campaign_row(&client, campaign, &log)).await?;
        timely(&log, schema::hold_campaign(&client, &row, &log, campaign)).await?;
        let insert = timely(&log, async { client.prepare(INSERT).await.map_err(error) }).await?;
        let mut session = Session {
            client,
            log,
            campaign: row.id,
            uid: row.uid,
            insert,
        };
        let mut replay = session.replay().await?;
        replay.set_campaign(campaign);
        Ok((session, replay))
    }

    /// Streams the campaign's records, in the order they were written, into a replay.
    async fn replay(&mut self) -> Result<Replay, SendLogError> {
        let log = &self.log;
        let error = |e: tokio_postgres::Error| database_error(log, &e);
        let mut replay = Replay::default();
        // A portal reads the rows a chunk at a time, in one snapshot.
        let transaction = self.client.transaction().await.map_err(error)?;
        let portal = timely(log, async {
            transaction
                .bind(SELECT, &[&self.campaign])
                .await
                .map_err(error)
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
                        log: log.clone(),
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

    /// Inserts `records` in order, in one statement: one transaction, committed on return.
    async fn append(&self, records: &[Record]) -> Result<(), SendLogError> {
        let mut columns = Columns::with_capacity(records.len());
        for record in records {
            columns.push(record);
        }
        let inserted = timely(&self.log, async {
            self.client
                .execute(
                    &self.insert,
                    &[
                        &self.campaign,
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
                .map_err(|e| database_error(&self.log, &e))
        })
        .await?;
        if inserted != records.len() as u64 {
            return Err(SendLogError::DatabaseFailed {
                log: self.log.clone(),
                problem: format!("{inserted} of {} records were written", records.len()),
            });
        }
        Ok(())
    }
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
        let (event, letter, reply, retry_at, via) = match &record.event {
            Event::Attempt { letter } => ("attempt", letter.as_deref(), None, None, None),
            Event::Sent { reply, via } => {
                ("sent", None, Some(reply.as_str()), None, via.as_deref())
            }
            Event::Deferred { reply, retry_at } => (
                "deferred",
                None,
                Some(reply.as_str()),
                retry_at.as_deref(),
                None,
            ),
            Event::Failed { reply } => ("failed", None, Some(reply.as_str()), None, None),
            Event::Withdrawn => ("withdrawn", None, None, None, None),
        };
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
const INSERT: &str = "
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

/// Runs the connection until it closes; its errors reach the requests that were waiting.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %describe(&e), "the send log's database connection ended");
    }
}

/// `work`, or [`SendLogError::DatabaseUnreachable`] if the database has not answered within
/// [`ANSWER_TIMEOUT`].
async fn timely<T>(
    log: &str,
    work: impl Future<Output = Result<T, SendLogError>>,
) -> Result<T, SendLogError> {
    tokio::time::timeout(ANSWER_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            Err(SendLogError::DatabaseUnreachable {
                log: log.to_owned(),
                problem: format!("no answer in {} s", ANSWER_TIMEOUT.as_secs()),
            })
        })
}

fn stopped() -> SendLogError {
    SendLogError::DatabaseFailed {
        log: "(send log database connection)".into(),
        problem: "the connection's thread stopped".into(),
    }
}
