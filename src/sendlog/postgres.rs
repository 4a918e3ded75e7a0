//! The send log in PostgreSQL: the same records and the same meaning as the file log, in
//! tables one database shares between many campaigns (see `schema`), for organizations that send
//! from more than one machine: `--log postgres://…` (or `send_log` in the campaign file). One
//! sender holds a campaign at a time for now; several sharing one come next.
//!
//! [`PgLog::open`] connects, makes or migrates the tables, takes the campaign's row (making it
//! on first use) and holds the campaign for the connection's life (an advisory lock, released by
//! the database when the connection ends, as the OS releases the file log's `flock`), then
//! streams the campaign's records into the same [`Replay`] the file log builds, a few thousand
//! rows at a time (see `rows`). [`SendLog::append`] writes a batch as one `INSERT` (one
//! transaction), and returns once it is committed. [`PgLog::read`] is `status`'s: it replays
//! without holding the campaign or making tables.
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
mod rows;
mod schema;
mod target;

use errors::{database_error, describe, timely};

pub use target::PgTarget;

use std::sync::mpsc as sync_channel;
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls, Statement};

use super::{Record, Replay, SendLog, SendLogError};

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

    /// Reads `campaign`'s log at `target` without holding the campaign or making tables (for
    /// `status`, which may run beside a send): a database without missive's tables, or without
    /// the campaign, is an empty log. Refuses a newer schema.
    pub fn read(target: &PgTarget, campaign: &str) -> Result<Replay, SendLogError> {
        // On a thread of its own, for the reasons `open` has one.
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| runtime(&target.shown)?.block_on(read(target, campaign)));
            reader.join().unwrap_or_else(|_| Err(stopped()))
        })
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
    let runtime = match runtime(&target.shown) {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = opened.send(Err(error));
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
        let mut client = connect(target).await?;
        timely(&log, schema::migrate(&mut client, &log)).await?;
        let row = timely(&log, schema::campaign_row(&client, campaign, &log)).await?;
        timely(&log, schema::hold_campaign(&client, &row, &log, campaign)).await?;
        let insert = timely(&log, async {
            let prepared = client.prepare(rows::INSERT).await;
            prepared.map_err(|e| database_error(&log, &e))
        })
        .await?;
        let mut replay = rows::replay(&mut client, row.id, &log).await?;
        replay.set_campaign(campaign);
        let session = Session {
            client,
            log,
            campaign: row.id,
            uid: row.uid,
            insert,
        };
        Ok((session, replay))
    }

    async fn append(&self, records: &[Record]) -> Result<(), SendLogError> {
        rows::insert(
            &self.client,
            &self.insert,
            self.campaign,
            records,
            &self.log,
        )
        .await
    }
}

/// A new connection to `target`, driven on the current runtime.
async fn connect(target: &PgTarget) -> Result<Client, SendLogError> {
    let error = |e: tokio_postgres::Error| database_error(&target.shown, &e);
    if target.tls {
        let tls = target::tls_connector(target);
        let (client, connection) = target.config.connect(tls).await.map_err(error)?;
        tokio::spawn(drive(connection));
        Ok(client)
    } else {
        let (client, connection) = target.config.connect(NoTls).await.map_err(error)?;
        tokio::spawn(drive(connection));
        Ok(client)
    }
}

/// `status`'s read: the campaign's records, without making tables or holding the campaign.
async fn read(target: &PgTarget, campaign: &str) -> Result<Replay, SendLogError> {
    let log = &target.shown;
    let mut client = connect(target).await?;
    if !timely(log, schema::readable(&client, log)).await? {
        return Ok(Replay::default());
    }
    let Some(row) = timely(log, schema::find_campaign(&client, campaign, log)).await? else {
        return Ok(Replay::default());
    };
    let mut replay = rows::replay(&mut client, row, log).await?;
    replay.set_campaign(campaign);
    Ok(replay)
}

/// A runtime for one connection, on the thread that calls it.
fn runtime(log: &str) -> Result<tokio::runtime::Runtime, SendLogError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SendLogError::DatabaseFailed {
            log: log.to_owned(),
            problem: format!("cannot start the database connection's runtime: {e}"),
        })
}

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

fn stopped() -> SendLogError {
    SendLogError::DatabaseFailed {
        log: "(send log database connection)".into(),
        problem: "the connection's thread stopped".into(),
    }
}
