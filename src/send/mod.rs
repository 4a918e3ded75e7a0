//! The send engine: from a stream of recipients to messages handed to SMTP servers, each
//! attempt and outcome recorded in the send log.
//!
//! One loop (the producer) reads the list, asks the log's replay where each person stands
//! (sent and failed people are skipped, so a run resumes where the last one stopped; deferred
//! ones wait until their retry is due), renders their message and puts it on a queue. A fixed
//! set of workers, one a connection (`worker`), takes messages from the queue at the
//! campaign's pace ([`crate::ratelimit`]) and delivers them through the route (`route`): the
//! primary relay, or the fallback while the primary is down. The queue is bounded (see
//! `ahead`), so rendering overlaps sending and memory stays flat whatever the list's length.
//! Producer and workers share one thread: the producer yields after each message, and the
//! workers wait on the network, not on each other.
//!
//! A run stops taking recipients at the end of the list, when its budget is spent
//! (`--max-messages`, `--max-duration`), when a quota is spent for longer than it may wait,
//! when the servers stay unreachable, or on SIGINT/SIGTERM. Messages in hand are finished and
//! their outcomes made durable; messages still on the queue were never handed over: their
//! attempts are marked `withdrawn` and they stay pending for the next run.

mod route;
mod worker;

pub use route::{Failover, Route};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinSet;

use crate::error::{Classify, ErrorKind};
use crate::letter::Letter;
use crate::message::Composer;
use crate::ratelimit::{Pace, QuotaSpent};
use crate::recipients::{RecipientReader, RecipientsError, Row, RowError};
use crate::render::{Frame, render};
use crate::retry::RetryPolicy;
use crate::sendlog::{Event, LogWriter, Record, Replay, SendLogError, Status};
use worker::{Job, Shared, Tally};

/// The run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Recipients(#[from] RecipientsError),
    #[error(transparent)]
    Log(#[from] Arc<SendLogError>),
}

impl Classify for SendError {
    fn kind(&self) -> ErrorKind {
        match self {
            SendError::Recipients(error) => error.kind(),
            SendError::Log(error) => error.kind(),
        }
    }
}

/// Limits on one run (a cron run's budget).
#[derive(Debug, Clone, Default)]
pub struct RunLimits {
    pub max_messages: Option<u64>,
    pub max_duration: Option<Duration>,
    /// Messages per second, replacing the campaign's.
    pub rate: Option<f64>,
}

/// What to do with messages an earlier run left in doubt (handed over, no reply recorded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InDoubt {
    /// Send again, with the same Message-ID, so the receiving side can spot the duplicate.
    #[default]
    Resend,
    /// Assume they arrived: never send them again.
    Skip,
}

/// Why a run stopped before the end of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    MaxMessages,
    MaxDuration,
    /// A quota is spent until later than the run may wait.
    Quota(QuotaSpent),
    Unreachable(String),
    /// A relay (`primary` or `fallback`) refused the login (5xx), or offers none: a person must
    /// mend the username or the password.
    LoginRefused {
        relay: &'static str,
        why: String,
    },
    /// A relay's certificate cannot be trusted, and no other relay carries the run: a person
    /// must mend the relay's url or `ca_file` (or the relay its certificate).
    Untrusted {
        relay: &'static str,
        why: String,
    },
    /// SIGINT or SIGTERM: messages in hand were finished and logged, no new one was taken.
    Interrupted,
    /// The send log could not be written; the run's error says why.
    LogFailed,
}

impl Classify for Stopped {
    fn kind(&self) -> ErrorKind {
        match self {
            // Waiting will not mend these: a person must.
            Stopped::LoginRefused { .. } | Stopped::Untrusted { .. } => ErrorKind::Invalid,
            Stopped::MaxMessages
            | Stopped::MaxDuration
            | Stopped::Quota(_)
            | Stopped::Unreachable(_)
            | Stopped::Interrupted => ErrorKind::TryAgain,
            Stopped::LogFailed => ErrorKind::Failure,
        }
    }
}

/// How many messages wait their turn on the queue, their `attempt` already written: enough
/// that the syncs of batches of attempts overlap the sending of the messages before them, so no
/// connection waits for the disk once a message. The price: a crash may leave that many
/// attempts in doubt that never reached a server (the next run sends them, with the same
/// Message-ID, which is right for them; `--in-doubt skip` would leave them out). A run that
/// stops cleanly withdraws them. At a set pace, about a second's worth is enough.
fn ahead(connections: usize, rate: Option<f64>) -> usize {
    let unpaced = (connections * 8).clamp(128, 256);
    match rate {
        Some(rate) => unpaced.min((rate.ceil() as usize).max(connections * 2)),
        None => unpaced,
    }
}

/// Becomes true when the run should stop taking recipients (a signal, a caller's decision).
pub type ShutdownSignal = watch::Receiver<bool>;

/// A shutdown signal that fires on SIGINT or SIGTERM. Must be called inside the runtime.
///
/// The first signal lets the messages in hand finish (each bounded by the SMTP timeout). A
/// second one exits at once with 75: every record acknowledged so far is already durable, and
/// messages cut off after DATA are in doubt, which the next run handles.
pub fn shutdown_on_signals() -> ShutdownSignal {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        for signals in 1.. {
            #[cfg(unix)]
            let terminated = async {
                match terminate.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let terminated = std::future::pending::<()>();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = terminated => {}
            }
            if signals == 1 {
                tracing::warn!(
                    "signal received: finishing the messages in hand, then stopping (again to stop now)"
                );
                let _ = tx.send(true);
            } else {
                tracing::warn!("second signal: stopping now; messages cut off are in doubt");
                std::process::exit(75);
            }
        }
    });
    rx
}

/// Live counts for a progress bar, updated as outcomes come in.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub deferred: AtomicU64,
    /// Rows done before this run, rejected, or not due.
    pub skipped: AtomicU64,
}

/// Which count of [`Progress`] an outcome adds to.
pub enum ProgressKind {
    Sent,
    Failed,
    Deferred,
    Skipped,
}

impl Progress {
    pub fn add(&self, kind: &ProgressKind) {
        let counter = match kind {
            ProgressKind::Sent => &self.sent,
            ProgressKind::Failed => &self.failed,
            ProgressKind::Deferred => &self.deferred,
            ProgressKind::Skipped => &self.skipped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Rows dealt with so far, whatever became of them.
    pub fn done(&self) -> u64 {
        [&self.sent, &self.failed, &self.deferred, &self.skipped]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// What one run did.
#[derive(Debug, Default)]
pub struct RunReport {
    pub sent: u64,
    pub failed: u64,
    pub deferred: u64,
    /// Handed over this run with no reply: in doubt until the next run.
    pub unanswered: u64,
    /// In-doubt messages from an earlier run that this run sent again.
    pub resent_in_doubt: u64,
    /// In-doubt messages from an earlier run left alone (`--in-doubt skip`).
    pub skipped_in_doubt: u64,
    /// Messages the fallback relay took.
    pub via_fallback: u64,
    /// People the log already had a final outcome for.
    pub already_done: u64,
    /// Deferred by an earlier run, and not yet due.
    pub not_due: u64,
    /// The earliest time one of those is due.
    pub next_due: Option<SystemTime>,
    pub rejected: Vec<RowError>,
    /// People on a suppression list: not mailed.
    pub suppressed: u64,
    pub stopped: Option<Stopped>,
}

impl RunReport {
    /// True when every recipient now has a final outcome: nothing for a later run to do.
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none() && self.deferred + self.not_due + self.unanswered == 0
    }

    fn add(&mut self, tally: Tally) {
        self.sent += tally.sent;
        self.failed += tally.failed;
        self.deferred += tally.deferred;
        self.unanswered += tally.unanswered;
        self.resent_in_doubt += tally.resent_in_doubt;
        self.via_fallback += tally.via_fallback;
    }
}

/// The letter and headers every message of the campaign shares.
pub struct Content<'a> {
    pub letter: &'a Letter,
    pub frame: Frame<'a>,
    pub composer: &'a Composer,
    /// Identifies this letter and its headers in the log's attempt records.
    pub fingerprint: &'a str,
}

/// Where the engine sends and records, how fast, and how it retries.
pub struct Engine {
    pub route: Route,
    pub log: LogWriter,
    /// Connections at once, each a worker.
    pub connections: usize,
    pub retry: RetryPolicy,
    pub pace: Pace,
    pub in_doubt: InDoubt,
    pub progress: Arc<Progress>,
}

/// Sends to every row of `recipients` that `replay` has no final outcome for.
pub async fn run(
    content: &Content<'_>,
    recipients: &mut RecipientReader,
    replay: &Replay,
    engine: Engine,
    limits: &RunLimits,
    shutdown: &ShutdownSignal,
) -> Result<RunReport, SendError> {
    let started = Instant::now();
    let mut report = RunReport::default();
    let (halt, mut halted) = watch::channel(None);
    let (queue, jobs) = mpsc::channel::<Job>(ahead(engine.connections, engine.pace.rate()));
    // A spent per-minute quota is waited out; longer ones end the run (cron comes back).
    let patience = limits.max_duration.map_or(Duration::from_secs(60), |max| {
        max.min(Duration::from_secs(60))
    });
    let shared = Arc::new(Shared {
        route: engine.route,
        log: engine.log.clone(),
        retry: engine.retry.clone(),
        pace: engine.pace,
        progress: Arc::clone(&engine.progress),
        halt,
        shutdown: shutdown.clone(),
        patience,
        deadline: limits.max_duration.map(|max| started + max),
    });
    let jobs = Arc::new(Mutex::new(jobs));
    let mut workers = JoinSet::new();
    for _ in 0..engine.connections.max(1) {
        let (shared, jobs) = (Arc::clone(&shared), Arc::clone(&jobs));
        workers.spawn(async move {
            let tally = worker::work(Arc::clone(&shared), jobs).await;
            if tally.is_err() {
                // Wake the producer: the run's error says what went wrong.
                shared.stop(Stopped::LogFailed);
            }
            tally
        });
    }
    let mut signalled = shutdown.clone();
    let skipped = || engine.progress.add(&ProgressKind::Skipped);
    let mut taken = 0u64;
    // Rows read since the producer last let the connections run (it shares their thread).
    let mut unyielded = 0u32;
    // The list could no longer be read: the run ends with that error, once the workers have
    // delivered what is queued (valid rows, their attempts written) rather than abandoned it.
    let mut unreadable = None;

    loop {
        if halted.borrow().is_some() {
            break;
        }
        unyielded += 1;
        if unyielded >= 256 {
            // A resumed run may skip a long run of rows already done: answer servers (and
            // signals) meanwhile.
            unyielded = 0;
            tokio::task::yield_now().await;
        }
        let row = match recipients.next_row() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(error) => {
                unreadable = Some(error);
                break;
            }
        };
        let recipient = match row {
            Row::Valid(recipient) => recipient,
            Row::Rejected(error) => {
                tracing::warn!("row rejected: {}", error.at(recipients.path()));
                report.rejected.push(error);
                skipped();
                continue;
            }
            Row::Suppressed(_, _) => {
                report.suppressed += 1;
                skipped();
                continue;
            }
        };
        let previous = replay.get(&recipient.key);
        let rcpt = recipient.email.to_string();
        let message_id = content.composer.message_id(&recipient);
        if let Some(entry) = previous {
            let now = SystemTime::now();
            if entry.status.is_final() {
                report.already_done += 1;
                skipped();
                continue;
            }
            if entry.status == Status::InDoubt && engine.in_doubt == InDoubt::Skip {
                report.skipped_in_doubt += 1;
                skipped();
                continue;
            }
            // The retry policy is about refusals: an in-doubt message may well have arrived, and
            // is sent again (same Message-ID) however many attempts it took.
            if entry.status == Status::Deferred
                && let Some(reason) = engine
                    .retry
                    .give_up(entry.attempts, entry.first_attempt, now)
            {
                let failed = Record::new(Event::Failed { reply: reason }, &rcpt, &message_id);
                engine.log.write(failed).await?;
                report.failed += 1;
                engine.progress.add(&ProgressKind::Failed);
                continue;
            }
            if let Some(due) = entry.retry_at.filter(|due| *due > now) {
                report.not_due += 1;
                report.next_due = report.next_due.min(Some(due)).or(Some(due));
                skipped();
                continue;
            }
        }
        let stop = if *shutdown.borrow() {
            Some(Stopped::Interrupted)
        } else if limits.max_messages.is_some_and(|max| taken >= max) {
            Some(Stopped::MaxMessages)
        } else if limits
            .max_duration
            .is_some_and(|max| started.elapsed() >= max)
        {
            Some(Stopped::MaxDuration)
        } else {
            None
        };
        if stop.is_some() {
            report.stopped = stop;
            break;
        }

        if queue.capacity() == 0 {
            // A full queue: wait until half of it has gone, so that the producer wakes once for
            // many messages rather than once for each (a thread switch costs more than a render).
            let refill = (queue.max_capacity() / 2).max(1);
            let room = tokio::select! {
                permits = queue.reserve_many(refill) => permits.is_ok(),
                _ = halted.changed() => false,
                _ = signalled.changed() => false,
            };
            if !room {
                break;
            }
        }
        let rendered = render(content.letter, &content.frame, &recipient);
        let message = match content
            .composer
            .compose(&recipient, rendered, SystemTime::now())
        {
            Ok(message) => message,
            Err(e) => {
                report.rejected.push(RowError {
                    line: recipient.line,
                    field: None,
                    problem: e.to_string(),
                });
                skipped();
                continue;
            }
        };
        if previous.is_some_and(|e| e.status == Status::InDoubt) {
            tracing::info!(%rcpt, %message_id, "sending an in-doubt message again, same Message-ID");
        }
        taken += 1;
        // Written now, synced while the message waits its turn: see `ahead`.
        let attempt = Record::new(Event::attempt(content.fingerprint), &rcpt, &message_id);
        let attempt = engine.log.submit(attempt).await?;
        let job = Job {
            rcpt,
            message_id,
            envelope: message.envelope().clone(),
            data: message.formatted(),
            attempt: Some(attempt),
            admitted: false,
            attempts_before: previous.map_or(0, |e| e.attempts),
            was_in_doubt: previous.is_some_and(|e| e.status == Status::InDoubt),
        };
        let slot = tokio::select! {
            slot = queue.reserve() => slot.ok(),
            _ = halted.changed() => None,
            _ = signalled.changed() => None,
        };
        match slot {
            Some(slot) => {
                slot.send(job);
                // The connections run on this thread too: let them answer their servers
                // between two renders rather than after a queue's worth.
                unyielded = 0;
                tokio::task::yield_now().await;
            }
            None => {
                worker::withdraw(&engine.log, &job).await?;
                break;
            }
        }
    }
    // Workers finish the message in hand, and the queue unless the run is stopping.
    drop(queue);
    let mut failure = None;
    while let Some(tally) = workers.join_next().await {
        match tally.expect("a worker does not panic") {
            Ok(tally) => report.add(tally),
            Err(error) => failure = Some(error),
        }
    }
    if let Some(error) = failure {
        return Err(error.into());
    }
    // What was queued but never handed over: its attempt is withdrawn.
    let mut left = jobs.lock().await;
    while let Ok(job) = left.try_recv() {
        worker::withdraw(&shared.log, &job).await?;
    }
    if let Some(error) = unreadable {
        return Err(error.into());
    }
    // What stopped a worker says more than the budget the producer reached meanwhile: a wrong
    // password must not pass for `--max-messages reached`.
    let halted = shared.halt.borrow().clone();
    report.stopped = match (report.stopped.take(), halted) {
        (_, Some(halted)) if halted.kind() == ErrorKind::Invalid => Some(halted),
        (None | Some(Stopped::MaxMessages | Stopped::MaxDuration), Some(halted)) => Some(halted),
        (ours, _) => ours,
    };
    if report.stopped.is_none() && *shutdown.borrow() {
        report.stopped = Some(Stopped::Interrupted);
    }
    Ok(report)
}
