//! The send log in PostgreSQL: the same records and the same meaning as the file log, in
//! tables one database shares between many campaigns (see `schema`), for organizations that send
//! from more than one machine: `--log postgres://…` (or `send_log` in the campaign file). Any
//! number of senders may share a campaign: they divide its people between them.
//!
//! [`PgLog::open`] connects, makes or migrates the tables, takes the campaign's row (making it
//! on first use), registers this sender with a lease (renewed on the connection's thread, over
//! a second connection, see [`Lease`] and `session`), then streams each person's state into the
//! same [`Replay`] the file log builds, in one `COPY` (see `rows`). [`SendLog::append`] writes
//! a batch in one transaction, where its attempts claim their people: the attempts of people
//! another sender holds are refused. [`PgLog::read`] is `status`'s: it replays without
//! registering or making tables.
//!
//! The campaign's pace and quotas are kept here too, for all its senders together: each asks
//! for permits a second's worth at a time (see `permits`).
//!
//! A sender that dies leaves its claims to the others once its lease runs out; one that cannot
//! renew its lease stops handing messages over before the lease can have run out (the
//! engine asks [`Lease::live`]).
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
mod import;
mod people;
mod permits;
mod rows;
mod schema;
mod senders;
mod session;
mod target;
mod tls;

use errors::{connect_error, describe, timely};
use permits::Granting;

pub use import::Imported;
pub use target::PgTarget;

use std::sync::Arc;
use std::sync::mpsc as sync_channel;
use std::thread::JoinHandle;
use std::time::Duration;

use session::serve;
use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls};

use super::{Lease, Record, Replay, SendLog, SendLogError};
use crate::ratelimit::{Limits, Permits};

/// How long others leave a sender's claims alone when it stops renewing its lease, unless
/// `MISSIVE_LEASE` (a duration: `30s`, `2s`) says otherwise; tests make it short.
const LEASE: Duration = Duration::from_secs(30);

/// How long the writer waits after a batch's commit before it writes the next (see
/// [`SendLog::spacing`]). A statement costs the database ~0.3 ms of CPU whatever its size
/// (the commit's WAL write and flush, the executor's start) and ~12 us a record. Written as
/// soon as the last was committed, batches held ~20 records at pool 4 against a server that
/// answers at once, and half the database's work was those fixed costs; a millisecond
/// between them makes batches of ~90 records, and the database's CPU per message ~26 us
/// instead of ~50 (bench section 5).
const SPACING: Duration = Duration::from_millis(1);

/// How long an idle writer waits for more records before a write (see [`SendLog::idle_wait`]).
/// Against a relay answering in 50 ms (bench section 7), a write as soon as a record came
/// committed 0.51–0.69 transactions a message; waiting 1 ms, 0.38–0.48; 5 ms, 0.28–0.34
/// (12 ms no fewer). At a relay that answers at once the writer is never idle: no change.
const IDLE_WAIT: Duration = Duration::from_millis(5);

/// The lease's length: [`LEASE`], or `MISSIVE_LEASE`.
fn lease_length() -> Duration {
    std::env::var("MISSIVE_LEASE")
        .ok()
        .and_then(|text| humantime::parse_duration(&text).ok())
        .filter(|length| *length >= Duration::from_millis(200))
        .unwrap_or(LEASE)
}

/// A campaign's send log in a PostgreSQL database.
pub struct PgLog {
    /// `None` once dropped: closing it ends the connection's thread.
    requests: Option<mpsc::UnboundedSender<Request>>,
    thread: Option<JoinHandle<()>>,
    uid: String,
    lease: Lease,
    granting: Granting,
}

/// Work for the connection's thread, and where to answer.
enum Request {
    /// A batch to commit; the answer says which attempts were refused.
    Append {
        records: Vec<Record>,
        done: sync_channel::SyncSender<Result<Vec<usize>, SendLogError>>,
    },
    /// How many of the campaign's people have no final outcome (see [`SendLog::unsettled`]).
    Unsettled {
        done: sync_channel::SyncSender<Result<u64, SendLogError>>,
    },
}

impl std::fmt::Debug for PgLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLog").field("uid", &self.uid).finish()
    }
}

impl PgLog {
    /// Opens `campaign`'s log in the database at `target`: connects, makes or migrates the
    /// tables, registers this sender, and replays each person's state. Refuses a newer schema.
    pub fn open(target: &PgTarget, campaign: &str) -> Result<(PgLog, Replay), SendLogError> {
        PgLog::open_as(target, campaign, None)
    }

    /// [`PgLog::open`] for a sender of `letter` (the fingerprint of what its messages share),
    /// which the other senders see; the replay says which letters they are sending
    /// ([`Replay::sending_elsewhere`]).
    pub fn open_sending(
        target: &PgTarget,
        campaign: &str,
        letter: &str,
    ) -> Result<(PgLog, Replay), SendLogError> {
        PgLog::open_as(target, campaign, Some(letter))
    }

    fn open_as(
        target: &PgTarget,
        campaign: &str,
        letter: Option<&str>,
    ) -> Result<(PgLog, Replay), SendLogError> {
        let (requests, incoming) = mpsc::unbounded_channel();
        let (opened, answer) = sync_channel::sync_channel(1);
        let (target, campaign) = (target.clone(), campaign.to_owned());
        let letter = letter.map(str::to_owned);
        let thread = std::thread::Builder::new()
            .name("missive-pglog".into())
            .spawn(move || serve(&target, &campaign, letter.as_deref(), opened, incoming))
            .expect("the OS can start a thread");
        match answer.recv() {
            Ok(Ok((replay, uid, lease, granting))) => {
                let log = PgLog {
                    requests: Some(requests),
                    thread: Some(thread),
                    uid,
                    lease,
                    granting,
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

    /// Reads `campaign`'s log at `target` without registering or making tables (for `status`,
    /// which may run beside senders): a database without missive's tables, or without the
    /// campaign, is an empty log. Also says how many senders hold a live lease. Refuses a
    /// newer schema.
    pub fn read(target: &PgTarget, campaign: &str) -> Result<(Replay, u64), SendLogError> {
        // On a thread of its own, for the reasons `open` has one.
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| runtime(&target.shown)?.block_on(read(target, campaign)));
            reader.join().unwrap_or_else(|_| Err(stopped()))
        })
    }

    /// Hands `request` to the connection's thread.
    fn ask(&self, request: Request) -> Result<(), SendLogError> {
        let requests = self.requests.as_ref().ok_or_else(stopped)?;
        requests.send(request).map_err(|_| stopped())
    }

    /// The identity the campaign's row drew when it was made: a campaign that remembers it can
    /// tell its own row from a namesake's.
    pub fn campaign_uid(&self) -> &str {
        &self.uid
    }
}

impl SendLog for PgLog {
    fn spacing(&self) -> Duration {
        SPACING
    }

    fn idle_wait(&self) -> Duration {
        IDLE_WAIT
    }

    fn lease(&self) -> Option<Lease> {
        Some(self.lease.clone())
    }

    fn share_pace(&mut self, limits: &Limits) -> Option<Arc<Permits>> {
        permits::start(&self.granting, limits)
    }

    fn append(&mut self, records: &[Record]) -> Result<Vec<usize>, SendLogError> {
        let (done, answer) = sync_channel::sync_channel(1);
        self.ask(Request::Append {
            records: records.to_vec(),
            done,
        })?;
        answer.recv().map_err(|_| stopped())?
    }

    fn unsettled(&mut self) -> Result<Option<u64>, SendLogError> {
        let (done, answer) = sync_channel::sync_channel(1);
        self.ask(Request::Unsettled { done })?;
        answer.recv().map_err(|_| stopped())?.map(Some)
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

/// A new connection to `target`, driven on the current runtime.
async fn connect(target: &PgTarget) -> Result<Client, SendLogError> {
    let error = |e: tokio_postgres::Error| connect_error(target, &e);
    if target.tls {
        let tls = tls::tls_connector(target);
        let (client, connection) = target.config.connect(tls).await.map_err(error)?;
        tokio::spawn(drive(connection));
        Ok(client)
    } else {
        let (client, connection) = target.config.connect(NoTls).await.map_err(error)?;
        tokio::spawn(drive(connection));
        Ok(client)
    }
}

/// `status`'s read: the campaign's people, and how many senders are active, without making
/// tables or registering.
async fn read(target: &PgTarget, campaign: &str) -> Result<(Replay, u64), SendLogError> {
    let log = &target.shown;
    let client = connect(target).await?;
    if !timely(log, schema::readable(&client, log)).await? {
        return Ok((Replay::default(), 0));
    }
    let Some(row) = timely(log, schema::find_campaign(&client, campaign, log)).await? else {
        return Ok((Replay::default(), 0));
    };
    // A second connection reads the quotas' history beside the people (see `people::replay`).
    let beside = connect(target).await?;
    let mut replay = people::replay(&client, &beside, row, log).await?;
    replay.set_campaign(campaign);
    let active = timely(log, senders::active_senders(&client, row, log)).await?;
    Ok((replay, u64::try_from(active).unwrap_or_default()))
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
