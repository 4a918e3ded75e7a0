//! One connection's worth of sending: a worker takes messages from the engine's queue and
//! delivers them, one SMTP transaction after another, over a connection it keeps open.
//!
//! Each transaction writes the log in the order that makes a crash harmless: the `attempt` is
//! durable before MAIL, RCPT and DATA go out (it was written when the message was queued, so
//! this rarely waits), and the outcome is written after the server's reply. So a failure
//! before the message went out is known to have delivered nothing, and only an attempt cut
//! off after it is *in doubt*. An outcome is counted, and shown, only once it is durable; the
//! worker does not wait for that before its next message, so the sync overlaps the next
//! exchange and shares a batch with the next attempt (the log makes records durable in the
//! order they were written).
//!
//! With a server that pipelines, the next message waiting in the queue, when nothing would
//! hold it back (its attempt durable, the pace letting it go), is taken early: its MAIL, RCPT
//! and DATA go out behind this message, in the same write, and it is the next one this
//! connection carries. A message then costs one round trip.
//!
//! What a reply means:
//! - 2xx after the message: `sent`.
//! - 4xx (to RCPT, DATA or the message): `deferred`, retried by a later run after a backoff;
//!   `failed` when that retry would come after the campaign's `send_before`.
//! - 5xx: `failed`, never retried.
//! - 421 before the message, or a connection that cannot be opened: nothing happened to the message;
//!   the worker reconnects (the route decides where, and when to give up) and tries it again.
//! - the connection lost before the message went out: `deferred`, and reconnect.
//! - no reply after the message: in doubt; no outcome is written, the next run decides.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use tokio::sync::{Mutex, mpsc};

use super::Stopped;
use super::delivery::{Carrier, Delivery};
use super::report::Outcome;
use super::shared::Shared;
use super::transaction::{Transaction, transact};
use crate::sendlog::{Durable, Event, LogWriter, Record, SendLogError, Written};
use crate::smtp::RelayName;

/// One message on its way.
pub struct Job {
    pub rcpt: String,
    pub message_id: String,
    pub envelope: Envelope,
    /// The message as it goes after DATA (before dot-stuffing).
    pub data: Vec<u8>,
    /// The attempt record, written when the message was queued; durable before DATA starts.
    pub attempt: Option<Durable>,
    /// Already counted by the pace (taken early to go out behind the message before it).
    pub admitted: bool,
    /// Attempts earlier runs made: the backoff grows with them.
    pub attempts_before: u32,
    pub was_in_doubt: bool,
    /// Its share of the bytes of messages in memory, given back when it is dropped.
    pub held: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Takes jobs until the queue is empty or the run stops.
pub async fn work<D: Delivery>(
    shared: Arc<Shared<D>>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
) -> Result<(), Arc<SendLogError>> {
    let mut worker = Worker {
        shared: &shared,
        queue: &queue,
        open: None,
        unconfirmed: VecDeque::new(),
    };
    // However the loop ended, at most one job was taken off the queue and never handed over:
    // its attempt is withdrawn here, once, so it stays pending for the next run.
    if let Some(job) = worker.deliver().await? {
        withdraw(&shared.log, &job).await?;
    }
    if let Some((connection, _)) = worker.open.take() {
        connection.quit().await;
    }
    worker.confirm(true).await
}

/// One worker's state between messages.
struct Worker<'a, D: Delivery> {
    shared: &'a Shared<D>,
    queue: &'a Mutex<mpsc::Receiver<Job>>,
    open: Option<(D::Connection, &'a D::Relay)>,
    /// Outcomes written but not yet known durable: counted (and shown) only once they are. The
    /// worker goes on meanwhile, so the sync of one message's outcome overlaps the next one's
    /// MAIL and RCPT, and shares a sync with its attempt.
    unconfirmed: VecDeque<(Option<Durable>, Settled)>,
}

impl<'a, D: Delivery> Worker<'a, D> {
    /// Delivers jobs until the queue is empty or the run stops. Returns the job it holds
    /// and never handed over, if it holds one, for the caller to withdraw.
    async fn deliver(&mut self) -> Result<Option<Job>, Arc<SendLogError>> {
        let shared = self.shared;
        // Taken early, behind the last message: in hand, it goes before anything else.
        let mut carried: Option<Job> = None;
        'jobs: loop {
            let mut job = match carried.take() {
                // Taken early but not in hand (not sent ahead: its attempt was not yet durable
                // or the pace said wait; or sent ahead on a connection since lost): when the
                // run is stopping, it waits for the next run with the rest of the queue.
                Some(job) if shared.stopping() && !(job.admitted && self.open.is_some()) => {
                    return Ok(Some(job));
                }
                Some(job) => job,
                None => {
                    if shared.stopping() {
                        return Ok(None);
                    }
                    let Some(job) = self.queue.lock().await.recv().await else {
                        return Ok(None);
                    };
                    if shared.stopping() {
                        // The run stopped while this worker waited for the queue.
                        return Ok(Some(job));
                    }
                    job
                }
            };
            // Not yet in hand: it waits for a log that answers.
            let in_hand = job.admitted && self.open.is_some();
            if !in_hand && !self.wait_for_the_log().await? {
                return Ok(Some(job));
            }
            // Waited for before DATA, however many connections the message takes.
            let mut attempt = job.attempt.take();
            // Refused already (another sender holds the person): it takes no connection and
            // no turn in the pace. (One refused later is caught before MAIL: `transact`.)
            if let Some(pending) = attempt.as_mut()
                && matches!(pending.ready(), Some(Ok(Written::Refused)))
            {
                shared.progress.add(Outcome::Taken);
                continue 'jobs;
            }
            loop {
                let (mut connection, relay) = match self.open.take() {
                    Some((connection, relay)) if shared.route.should_leave(relay) => {
                        connection.quit().await;
                        continue;
                    }
                    Some(open) => open,
                    None => match shared.route.connect(|| !shared.stopping()).await {
                        Ok(open) => open,
                        Err(why) => {
                            if !shared.stopping() {
                                shared.stop(why);
                            }
                            // The job never reached DATA: it stays pending for the next run.
                            return Ok(Some(job));
                        }
                    },
                };
                // Past `send_before` a message not in hand never goes: asked before its turn
                // in the pace (the queue empties at once) and after (it may have waited past).
                // The run goes on, withdrawing the queue, while the producer expires the rest.
                let expired = if job.admitted {
                    // Counted when it was taken early; a second try is counted again.
                    job.admitted = false;
                    false
                } else if shared.expired() {
                    true
                } else {
                    match shared.admit().await {
                        None => true,
                        Some(Err(spent)) => {
                            shared.stop(Stopped::Quota(spent));
                            self.open = Some((connection, relay));
                            return Ok(Some(job));
                        }
                        // Its turn in the pace may have come after the run stopped: the
                        // window closed, the run's budget or the lease ran out, a signal came
                        // (`stopping` notes the first three).
                        Some(Ok(())) if shared.stopping() => {
                            self.open = Some((connection, relay));
                            return Ok(Some(job));
                        }
                        Some(Ok(())) => shared.expired(),
                    }
                };
                if expired {
                    withdraw(&shared.log, &job).await?;
                    shared.progress.add(Outcome::Expired);
                    self.open = Some((connection, relay));
                    continue 'jobs;
                }
                let transaction = transact(
                    shared,
                    &mut connection,
                    relay,
                    &job,
                    &mut attempt,
                    self.queue,
                )
                .await?;
                match transaction {
                    Transaction::Done {
                        outcome,
                        reusable,
                        durable,
                        next,
                    } => {
                        carried = next.map(|job| *job);
                        let settled = Settled {
                            outcome,
                            was_in_doubt: job.was_in_doubt,
                            via_fallback: D::name(relay) == RelayName::Fallback,
                        };
                        self.unconfirmed.push_back((durable, settled));
                        self.confirm(false).await?;
                        if reusable {
                            self.open = Some((connection, relay));
                        }
                        break;
                    }
                    // Nothing happened to the message (a 421 before DATA): after a pause, a
                    // new connection tries it again.
                    Transaction::Again => {
                        if shared.stopping() {
                            return Ok(Some(job));
                        }
                        tokio::time::sleep(shared.route.pause()).await;
                    }
                }
            }
        }
    }

    /// Waits while the log is stalled (see [`LogWriter::stalled`]) before a message goes out:
    /// sent now, its outcome could not be recorded, and the next run would mail it again. So
    /// a log cut off costs a second copy for the messages in hand, not for the whole queue
    /// whose attempts were written ahead. False when the run stops meanwhile; the log's failure
    /// when it has failed.
    async fn wait_for_the_log(&mut self) -> Result<bool, Arc<SendLogError>> {
        let log = &self.shared.log;
        loop {
            if let Some(failure) = log.failure() {
                return Err(failure);
            }
            if !log.stalled() {
                return Ok(true);
            }
            if self.shared.stopping() {
                return Ok(false);
            }
            // Outcomes this worker still waits on are counted as they come.
            self.confirm(false).await?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Counts the settled messages whose records are durable; with `all`, waits for every one.
    async fn confirm(&mut self, all: bool) -> Result<(), Arc<SendLogError>> {
        while let Some((durable, _)) = self.unconfirmed.front_mut() {
            if all {
                if let Some(handle) = durable.take() {
                    handle.wait().await?;
                }
            } else if let Some(handle) = durable {
                // Records become durable in order: the first one not yet durable ends the round.
                match handle.ready() {
                    Some(result) => drop(result?),
                    None => break,
                }
            }
            let (_, settled) = self.unconfirmed.pop_front().expect("just looked at it");
            let Settled {
                outcome,
                was_in_doubt,
                via_fallback,
            } = settled;
            self.shared
                .progress
                .settle(outcome, was_in_doubt, via_fallback);
        }
        Ok(())
    }
}

/// Records that `job`'s attempt was never handed over (the run is stopping).
pub async fn withdraw(log: &LogWriter, job: &Job) -> Result<(), Arc<SendLogError>> {
    let withdrawn = Record::new(Event::Withdrawn, &job.rcpt, &job.message_id);
    log.submit(withdrawn).await.map(drop)
}

/// A message whose fate this run knows, waiting for its record to be durable.
struct Settled {
    outcome: Outcome,
    was_in_doubt: bool,
    via_fallback: bool,
}
