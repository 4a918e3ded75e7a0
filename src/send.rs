//! The send engine: from a stream of recipients to messages handed to an SMTP server, each
//! attempt and outcome recorded in the send log.
//!
//! One loop reads the list, asks the log's replay whether each person is done (sent and failed
//! people are skipped, so a run resumes where the last one stopped), paces, renders, and hands
//! the message to a delivery task. At most `pool_size` deliveries run at once (a semaphore), so
//! rendering the next message overlaps sending the last ones, and nothing grows without bound.
//!
//! A delivery task makes its `attempt` durable, sends, and makes the outcome durable: 2xx sent,
//! 4xx deferred (a later run tries again), 5xx failed for good. When the server cannot be reached
//! at all, the run stops taking recipients: messages in hand stay *in doubt* and are sent again,
//! with the same Message-ID, by the next run.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lettre::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::letter::Letter;
use crate::message::Composer;
use crate::recipients::{RecipientReader, RecipientsError, Row, RowError};
use crate::render::{Frame, render};
use crate::retry::RetryPolicy;
use crate::sendlog::{Event, LogWriter, Record, Replay, SendLogError, Status, timestamp};
use crate::smtp::{Delivery, Mailer};

/// The run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Recipients(#[from] RecipientsError),
    #[error(transparent)]
    Log(#[from] Arc<SendLogError>),
}

/// Limits on one run (a cron run's budget) and its pace.
#[derive(Debug, Clone, Default)]
pub struct RunLimits {
    pub max_messages: Option<u64>,
    pub max_duration: Option<Duration>,
    /// Messages per second.
    pub rate: Option<f64>,
}

/// Why a run stopped before the end of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    MaxMessages,
    MaxDuration,
    Unreachable(String),
    /// SIGINT or SIGTERM: messages in hand were finished and logged, no new one was taken.
    Interrupted,
}

/// Becomes true when the run should stop taking recipients (a signal, a caller's decision).
pub type ShutdownSignal = tokio::sync::watch::Receiver<bool>;

/// A shutdown signal that fires on SIGINT or SIGTERM. Must be called inside the runtime.
pub fn shutdown_on_signals() -> ShutdownSignal {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
        tracing::warn!("signal received: finishing the messages in hand, then stopping");
        let _ = tx.send(true);
    });
    rx
}

/// What one run did.
#[derive(Debug, Default)]
pub struct RunReport {
    pub sent: u64,
    pub failed: u64,
    pub deferred: u64,
    /// In-doubt messages from an earlier run that this run sent again.
    pub resent_in_doubt: u64,
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
        self.stopped.is_none() && self.deferred == 0 && self.not_due == 0
    }

    fn count(&mut self, done: Done) {
        self.resent_in_doubt += u64::from(done.was_in_doubt);
        match done.delivery {
            Delivery::Sent(_) => self.sent += 1,
            Delivery::Deferred(_) => self.deferred += 1,
            Delivery::Failed(_) => self.failed += 1,
            Delivery::Unreachable(error) => {
                if self.stopped.is_none() {
                    self.stopped = Some(Stopped::Unreachable(error));
                }
            }
        }
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

/// Where the engine sends and records, and how it retries.
pub struct Engine {
    pub mailer: Arc<Mailer>,
    pub log: LogWriter,
    /// Deliveries at once; lettre keeps as many connections open.
    pub pool_size: usize,
    pub retry: RetryPolicy,
}

/// Sends to every row of `recipients` that `replay` has no final outcome for.
pub async fn run(
    content: &Content<'_>,
    recipients: &mut RecipientReader,
    replay: &Replay,
    engine: &Engine,
    limits: &RunLimits,
    shutdown: &ShutdownSignal,
) -> Result<RunReport, SendError> {
    let started = Instant::now();
    let mut report = RunReport::default();
    let mut pace = limits.rate.map(|rate| {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let slots = Arc::new(Semaphore::new(engine.pool_size.max(1)));
    let mut in_flight: JoinSet<Result<Done, Arc<SendLogError>>> = JoinSet::new();
    let mut taken = 0u64;

    loop {
        // Wait for a free delivery slot first, then look at what finished meanwhile: a server
        // found down while we waited must stop the run before one more message goes out.
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        while let Some(done) = in_flight.try_join_next() {
            report.count(done.expect("a delivery task does not panic")?);
        }
        if report.stopped.is_some() {
            break;
        }
        let Some(row) = recipients.next_row()? else {
            break;
        };
        let recipient = match row {
            Row::Valid(recipient) => recipient,
            Row::Rejected(error) => {
                tracing::warn!("row rejected: {}", error.at(recipients.path()));
                report.rejected.push(error);
                continue;
            }
            Row::Suppressed(_, _) => {
                report.suppressed += 1;
                continue;
            }
        };
        let previous = replay.get(&recipient.key);
        let rcpt = recipient.email.to_string();
        let message_id = content.composer.message_id(&recipient);
        match previous {
            Some(entry) if entry.status.is_final() => {
                report.already_done += 1;
                continue;
            }
            Some(entry) => {
                let now = SystemTime::now();
                if let Some(reason) = engine
                    .retry
                    .give_up(entry.attempts, entry.first_attempt, now)
                {
                    engine
                        .log
                        .write(Record::new(
                            Event::Failed { reply: reason },
                            &rcpt,
                            &message_id,
                        ))
                        .await?;
                    report.failed += 1;
                    continue;
                }
                if let Some(due) = entry.retry_at.filter(|due| *due > now) {
                    report.not_due += 1;
                    report.next_due = report.next_due.min(Some(due)).or(Some(due));
                    continue;
                }
            }
            None => {}
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
        if let Some(pace) = &mut pace {
            pace.tick().await;
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
                continue;
            }
        };
        taken += 1;
        let job = Job {
            rcpt,
            message_id,
            message,
            letter: content.fingerprint.to_owned(),
            attempts_before: previous.map_or(0, |e| e.attempts),
            was_in_doubt: previous.is_some_and(|e| e.status == Status::InDoubt),
        };
        let task = deliver(
            job,
            Arc::clone(&engine.mailer),
            engine.log.clone(),
            engine.retry.clone(),
            slot,
        );
        in_flight.spawn(task);
    }
    // Messages in hand are finished, whatever stopped the loop: their outcomes must be logged.
    while let Some(done) = in_flight.join_next().await {
        report.count(done.expect("a delivery task does not panic")?);
    }
    Ok(report)
}

/// One message on its way.
struct Job {
    rcpt: String,
    message_id: String,
    message: Message,
    letter: String,
    /// Attempts earlier runs made: the backoff grows with them.
    attempts_before: u32,
    was_in_doubt: bool,
}

struct Done {
    delivery: Delivery,
    was_in_doubt: bool,
}

/// Attempt (durable) → deliver → outcome (durable). Holds a pool slot until the end.
async fn deliver(
    job: Job,
    mailer: Arc<Mailer>,
    log: LogWriter,
    retry: RetryPolicy,
    _slot: OwnedSemaphorePermit,
) -> Result<Done, Arc<SendLogError>> {
    log.write(Record::new(
        Event::attempt(&job.letter),
        &job.rcpt,
        &job.message_id,
    ))
    .await?;
    let delivery = mailer.deliver(job.message).await;
    let event = match &delivery {
        Delivery::Sent(reply) => Some(Event::Sent {
            reply: reply.clone(),
        }),
        Delivery::Deferred(reply) => {
            let due = retry.next_attempt(job.attempts_before + 1, SystemTime::now());
            Some(Event::Deferred {
                reply: reply.clone(),
                retry_at: Some(timestamp(due)),
            })
        }
        Delivery::Failed(reply) => Some(Event::Failed {
            reply: reply.clone(),
        }),
        Delivery::Unreachable(error) => {
            // No outcome is recorded: the attempt stays in doubt and is resent next run.
            tracing::error!(server = %mailer.endpoint(), rcpt = %job.rcpt, %error, "no answer from the SMTP server");
            None
        }
    };
    if let Some(event) = event {
        tracing::debug!(rcpt = %job.rcpt, ?event, "outcome");
        log.write(Record::new(event, &job.rcpt, &job.message_id))
            .await?;
    }
    Ok(Done {
        delivery,
        was_in_doubt: job.was_in_doubt,
    })
}
