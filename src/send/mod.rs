//! The send engine: from a stream of recipients to messages handed to SMTP servers, each
//! attempt and outcome recorded in the send log.
//!
//! One loop (the producer) reads the list, asks the log's replay where each person stands and
//! decides what to do with them (`decide`, which `status` shares: sent and failed people are
//! skipped, so a run resumes where the last one stopped; deferred ones wait until their retry is
//! due), renders their message and puts it on a queue. A fixed set of workers, one a connection
//! (`worker`), takes messages from the queue at the campaign's pace ([`crate::ratelimit`]) and
//! delivers them through the route (`route`): the primary relay, or the fallback while the primary
//! is down. The queue is bounded (see `ahead`), so rendering overlaps sending and memory stays flat
//! whatever the list's length. Producer and workers share one thread: the producer yields after
//! each message, and the workers wait on the network, not on each other.
//!
//! A run stops taking recipients at the end of the list, when its budget is spent
//! (`--max-messages`, `--max-duration`), when a quota is spent for longer than it may wait,
//! when the servers stay unreachable, or when the caller's shutdown future resolves (the
//! binary's SIGINT/SIGTERM). The producer stops at its budget by itself; every other reason
//! (a worker's, the deadline, the shutdown) is set once, the first one wins, where the producer
//! and every worker look, and the report says which ([`Stopped`]). Messages in hand are
//! finished and their outcomes made durable; messages still on the queue were never handed
//! over: their attempts are marked `withdrawn` and they stay pending for the next run.
//!
//! The campaign's `send_before` is not a stop: once it passes, the workers withdraw what they
//! take off the queue instead of handing it over, and the producer goes on through the list,
//! where `decide` expires everyone not yet mailed and gives up the deferred. So a run that
//! crosses it finishes the messages in hand and ends with a final outcome for everyone.

mod ahead;
mod decide;
mod delivery;
mod report;
mod route;
mod shared;
mod transaction;
mod worker;

pub(crate) use decide::{Decision, decide};
pub use delivery::{Carrier, Delivery, Sink, SinkConnection};
pub use report::{Counts, Progress, RunReport, Stopped};
pub use route::{Failover, Route};

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinSet;

use crate::error::{Classify, ErrorKind};
use crate::message::Composer;
use crate::ratelimit::Pace;
use crate::recipients::{RecipientReader, RecipientsError, Row, RowError};
use crate::render::Template;
use crate::retry::RetryPolicy;
use crate::sendlog::{Event, LogWriter, Record, Replay, SendLogError, Status};
use crate::window::{self, Personal};
use ahead::{Ahead, ahead};
use report::{Outcome, why_stopped};
use shared::Shared;
use worker::Job;

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
    /// The campaign's `send_before`: from then on no message is handed over; the rest expire.
    pub send_before: Option<SystemTime>,
    /// When the campaign's `[window]` closes: from then on no message is taken; those in hand
    /// are finished and the run stops (the rest wait for the window's next opening).
    pub window_closes: Option<SystemTime>,
    /// The `[window]` read in each person's own time zone: a person is mailed only while
    /// theirs is open; the others wait for a later run.
    pub personal_window: Option<Box<Personal>>,
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

/// The letter and headers every message of the campaign shares.
pub struct Content<'a> {
    /// The letter in its frame, prepared once for the whole run.
    pub template: &'a Template,
    pub composer: &'a Composer,
    /// Identifies this letter and its headers in the log's attempt records.
    pub fingerprint: &'a str,
}

/// A server refused a recipient for good (a 5xx to `RCPT TO` or to the message): what the
/// engine tells whoever listens, once the `failed` record is written. `send` keeps the dead
/// mailboxes among them out of the next campaigns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rcpt: String,
    /// The server's reply, as the log records it.
    pub reply: String,
}

/// Where the engine sends and records, how fast, and how it retries.
pub struct Engine<D: Delivery = Route> {
    /// The SMTP relays in a run; a [`Sink`] in benchmarks and tests.
    pub route: D,
    pub log: LogWriter,
    /// Connections at once, each a worker.
    pub connections: usize,
    pub retry: RetryPolicy,
    pub pace: Pace,
    pub in_doubt: InDoubt,
    pub progress: Arc<Progress>,
    /// Where to tell of each [`Refusal`], if anyone listens. A full channel holds the worker
    /// back until there is room: the listener must keep reading until the channel closes,
    /// which it does when the run ends.
    pub refusals: Option<mpsc::Sender<Refusal>>,
}

/// Sends to every row of `recipients` that `replay` has no final outcome for, until the list
/// ends, a limit stops the run, or `shutdown` resolves ([`Stopped::Interrupted`]).
pub async fn run<D: Delivery>(
    content: &Content<'_>,
    recipients: &mut RecipientReader,
    replay: &Replay,
    engine: Engine<D>,
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
        refusals: engine.refusals,
        halt,
        patience,
        deadline: limits.max_duration.map(|max| started + max),
        send_before: limits.send_before,
        window_closes: limits.window_closes,
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
            let worked = worker::work(Arc::clone(&shared), jobs).await;
            if worked.is_err() {
                // Wake the producer: the run's error says what went wrong.
                shared.stop(Stopped::LogFailed);
            }
            worked
        });
    }
    let mut queue = Ahead::new(queue, &engine.log, content.fingerprint);
    let mut personal_window = limits.personal_window.clone();
    let skipped = || engine.progress.add(Outcome::Skipped);
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
        let entry = replay.get(&recipient.key);
        let (earlier, attempts_before) = match decide(
            entry.as_ref(),
            engine.in_doubt,
            &engine.retry,
            limits.send_before,
            SystemTime::now(),
        ) {
            Decision::Send {
                earlier,
                attempts_before,
            } => (earlier, attempts_before),
            Decision::Done(_) => {
                report.already_done += 1;
                skipped();
                continue;
            }
            Decision::SkipInDoubt => {
                report.skipped_in_doubt += 1;
                skipped();
                continue;
            }
            Decision::Expired => {
                engine.progress.add(Outcome::Expired);
                continue;
            }
            Decision::GiveUp(reason) => {
                let message_id = content.composer.message_id(&recipient);
                let rcpt = recipient.email.to_string();
                let failed = Record::new(Event::Failed { reply: reason }, &rcpt, &message_id);
                engine.log.write(failed).await?;
                engine.progress.add(Outcome::Failed);
                continue;
            }
            Decision::NotDue(due) => {
                report.not_due += 1;
                report.next_due = report.next_due.min(Some(due)).or(Some(due));
                skipped();
                continue;
            }
        };
        if let Some(personal) = &mut personal_window {
            match personal.at(recipient.field(personal.column()), SystemTime::now()) {
                Ok(window::State::Open { .. }) => {}
                Ok(window::State::Closed { opens }) => {
                    report.waiting_for_window += 1;
                    report.window_opens = report.window_opens.min(Some(opens)).or(Some(opens));
                    skipped();
                    continue;
                }
                Err(problem) => {
                    let error = RowError {
                        line: recipient.line,
                        field: Some(personal.column().to_owned()),
                        problem,
                    };
                    tracing::warn!("row rejected: {}", error.at(recipients.path()));
                    report.rejected.push(error);
                    skipped();
                    continue;
                }
            }
        }
        // Only for people mailed now: a resumed run skips most rows.
        let rcpt = recipient.email.to_string();
        let message_id = content.composer.message_id(&recipient);
        let was_in_doubt = earlier == Some(Status::InDoubt);
        let stop = if limits.max_messages.is_some_and(|max| taken >= max) {
            Some(Stopped::MaxMessages)
        } else {
            shared::clock_stop(shared.deadline, limits.window_closes)
        };
        if stop.is_some() {
            report.stopped = stop;
            break;
        }

        if !queue.room(&mut halted).await? {
            break;
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
        if was_in_doubt {
            // Its claim is written with it: a log shared by several senders may still refuse
            // it (another sender holds the person), and then nothing goes.
            tracing::info!(
                %rcpt, %message_id,
                "an in-doubt message queued again, same Message-ID: sent unless another sender holds it"
            );
        }
        taken += 1;
        // Its attempt is written when it enters the queue: see `ahead`.
        let mut job = Job {
            rcpt,
            message_id,
            envelope: message.envelope().clone(),
            data: message.formatted(),
            attempt: None,
            admitted: false,
            attempts_before,
            was_in_doubt,
            held: None,
        };
        if !queue.hold(&mut job, &mut halted).await? {
            break;
        }
        queue.push(job).await?;
        // The connections run on this thread too: let them answer their servers between two
        // renders rather than after a queue's worth.
        unyielded = 0;
        tokio::task::yield_now().await;
    }
    // Workers finish the message in hand, and the queue unless the run is stopping.
    queue.close(&mut halted).await?;
    let mut failure = None;
    while let Some(worked) = workers.join_next().await {
        if let Err(error) = worked.expect("a worker does not panic") {
            failure = Some(error);
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
    report.counts = shared.progress.counts();
    report.set_aside = shared.route.set_aside();
    let halted = shared.halt.borrow().clone();
    report.stopped = why_stopped(report.stopped.take(), halted);
    Ok(report)
}
