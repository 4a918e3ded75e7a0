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
//! when the servers stay unreachable, or when the caller's shutdown future resolves (the
//! binary's SIGINT/SIGTERM). The producer stops at its budget by itself; every other reason
//! (a worker's, the deadline, the shutdown) is set once, the first one wins, where the producer
//! and every worker look, and the report says which ([`Stopped`]). Messages in hand are
//! finished and their outcomes made durable; messages still on the queue were never handed
//! over: their attempts are marked `withdrawn` and they stay pending for the next run.

mod route;
mod worker;

pub use route::{Failover, Route};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinSet;

use crate::error::{Classify, ErrorKind};
use crate::message::Composer;
use crate::ratelimit::{Pace, QuotaSpent};
use crate::recipients::{RecipientReader, RecipientsError, Row, RowError};
use crate::render::Template;
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
    /// The caller's shutdown resolved (SIGINT or SIGTERM, in the binary): messages in hand
    /// were finished and logged, no new one was taken.
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
    /// The letter in its frame, prepared once for the whole run.
    pub template: &'a Template,
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

/// Sends to every row of `recipients` that `replay` has no final outcome for, until the list
/// ends, a limit stops the run, or `shutdown` resolves ([`Stopped::Interrupted`]).
pub async fn run(
    content: &Content<'_>,
    recipients: &mut RecipientReader,
    replay: &Replay,
    engine: Engine,
    limits: &RunLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
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
        patience,
        deadline: limits.max_duration.map(|max| started + max),
    });
    // The caller's shutdown is one more reason to stop, told apart by the report. The watch
    // ends with the run, whichever way it ends (a `JoinSet` aborts its tasks when dropped); it
    // holds the run weakly, so as not to keep the log writer open.
    let mut watch_shutdown = JoinSet::new();
    let interrupt = Arc::downgrade(&shared);
    watch_shutdown.spawn(async move {
        shutdown.await;
        if let Some(shared) = interrupt.upgrade() {
            shared.stop(Stopped::Interrupted);
        }
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
        let stop = if limits.max_messages.is_some_and(|max| taken >= max) {
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
            };
            if !room {
                break;
            }
        }
        let rendered = content.template.render(&recipient);
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
    let halted = shared.halt.borrow().clone();
    report.stopped = why_stopped(report.stopped.take(), halted);
    Ok(report)
}

/// Why the run stopped, from the budget the producer reached (`--max-messages`,
/// `--max-duration`) and the run's halt (a worker's reason, the deadline, or the caller's
/// shutdown). What stopped a worker says more than the budget reached meanwhile: a wrong
/// password must not pass for `--max-messages reached`. A shutdown after the budget was
/// reached did not stop the run: the budget did.
fn why_stopped(budget: Option<Stopped>, halted: Option<Stopped>) -> Option<Stopped> {
    match (budget, halted) {
        // A login refused, a certificate that cannot be trusted: a person must act.
        (_, Some(halted)) if halted.kind() == ErrorKind::Invalid => Some(halted),
        (Some(budget), Some(Stopped::Interrupted)) => Some(budget),
        (_, Some(halted)) => Some(halted),
        (budget, None) => budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_what_stopped_the_run() {
        let refused = Stopped::LoginRefused {
            relay: "primary",
            why: "535 5.7.8 bad credentials".into(),
        };
        let unreachable = Stopped::Unreachable("connection refused".into());
        for (budget, halted, stopped) in [
            (None, None, None),
            (Some(Stopped::MaxMessages), None, Some(Stopped::MaxMessages)),
            (None, Some(Stopped::Interrupted), Some(Stopped::Interrupted)),
            (None, Some(Stopped::MaxDuration), Some(Stopped::MaxDuration)),
            // A worker's reason says more than the budget reached meanwhile.
            (
                Some(Stopped::MaxMessages),
                Some(refused.clone()),
                Some(refused.clone()),
            ),
            (
                Some(Stopped::MaxDuration),
                Some(unreachable.clone()),
                Some(unreachable.clone()),
            ),
            // A signal once the budget was spent: the budget ended the run.
            (
                Some(Stopped::MaxMessages),
                Some(Stopped::Interrupted),
                Some(Stopped::MaxMessages),
            ),
            (
                Some(Stopped::MaxDuration),
                Some(Stopped::Interrupted),
                Some(Stopped::MaxDuration),
            ),
        ] {
            let what = format!("{budget:?} and {halted:?}");
            assert_eq!(why_stopped(budget, halted), stopped, "{what}");
        }
    }
}
