//! Messages rendered ahead of sending, and when their attempts are written.
//!
//! A message's `attempt` is written when it enters the queue, so that its sync overlaps the
//! sending of the messages before it; the queue's length bounds how many attempts a crash can
//! leave in doubt that never reached a server (see [`ahead`]). When the queue is full of
//! messages whose attempts are not yet durable (a server that answers at once, a slow sync),
//! the producer does not wait idle: it goes on rendering into a second line here, with no
//! attempt written for them, and hands them to the queue, attempt by attempt, as room frees.
//! So the core renders while the disk syncs, and the exposure to a crash stays what the queue
//! allows: a message waiting here has no record at all, and a crash, or a stop, leaves it
//! pending for the next run exactly as if its row had not been read.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, watch};

use super::Stopped;
use super::worker::Job;
use crate::sendlog::{Event, LogWriter, Record, SendLogError};

/// How many messages wait their turn on the queue, their `attempt` already written: enough
/// that the syncs of batches of attempts overlap the sending of the messages before them, so no
/// connection waits for the disk once a message. The price: a crash may leave that many
/// attempts in doubt that never reached a server (the next run sends them, with the same
/// Message-ID, which is right for them; `--in-doubt skip` would leave them out). A run that
/// stops cleanly withdraws them. At a set pace, about a second's worth is enough.
///
/// As many again may wait rendered, without attempts, behind the queue ([`Ahead`]).
pub(super) fn ahead(connections: usize, rate: Option<f64>) -> usize {
    let unpaced = (connections * 8).clamp(128, 256);
    match rate {
        Some(rate) => unpaced.min((rate.ceil() as usize).max(connections * 2)),
        None => unpaced,
    }
}

/// How many bytes of messages may be in memory at once: rendered and waiting, on the queue or
/// behind it, and in the connections' hands. A letter of 20 KB never comes near (the counts of
/// [`ahead`] bound it first), but at those counts messages carrying a 1 MB receipt each would
/// hold a quarter of a gigabyte. With it, memory stays bounded whatever is attached: this, and
/// the message being made. The price, only for messages over a quarter of it (8 MB, past what
/// most providers take): fewer of them travel at once than the pool has connections.
pub(super) const MESSAGE_BYTES: usize = 32 << 20;

/// The producer's end of the queue, with the messages rendered behind it.
pub(super) struct Ahead<'a> {
    queue: mpsc::Sender<Job>,
    /// Rendered, in the list's order, no attempt written yet.
    rendered: VecDeque<Job>,
    log: &'a LogWriter,
    /// The letter's fingerprint, for the attempt records.
    fingerprint: &'a str,
    /// The writer was told the queue is full; told again once the queue took more.
    hurried: bool,
    /// Messages rendered since the queue was last seen with room.
    behind: u32,
    /// [`MESSAGE_BYTES`], shared out to the messages rendered and not yet done with.
    bytes: Arc<Semaphore>,
}

/// How often, while the queue is full, the producer offers the core to the log's thread.
const YIELD_EVERY: u32 = 4;

impl<'a> Ahead<'a> {
    pub fn new(queue: mpsc::Sender<Job>, log: &'a LogWriter, fingerprint: &'a str) -> Self {
        Ahead {
            queue,
            rendered: VecDeque::new(),
            log,
            fingerprint,
            hurried: false,
            behind: 0,
            bytes: Arc::new(Semaphore::new(MESSAGE_BYTES)),
        }
    }

    /// Holds `job`'s share of [`MESSAGE_BYTES`] (what it carries; all of it for a larger one),
    /// waiting while the messages before it hold it: each gives it back when it is done with.
    /// False when the run halted meanwhile: the job is dropped, with no attempt written, and
    /// stays pending for the next run.
    pub async fn hold(
        &mut self,
        job: &mut Job,
        halted: &mut watch::Receiver<Option<Stopped>>,
    ) -> Result<bool, Arc<SendLogError>> {
        let wanted = job.data.len().clamp(1, MESSAGE_BYTES) as u32;
        loop {
            let bytes = Arc::clone(&self.bytes);
            // While messages rendered behind the queue hold some, they must not wait for the
            // producer that waits for them: each room the queue makes goes to them.
            let room = tokio::select! {
                held = bytes.acquire_many_owned(wanted) => {
                    job.held = Some(held.expect("the semaphore is never closed"));
                    return Ok(true);
                }
                slot = self.queue.reserve(), if !self.rendered.is_empty() => slot.is_ok(),
                _ = halted.changed() => false,
            };
            if !room {
                return Ok(false);
            }
            self.hand_over().await?;
        }
    }

    /// Waits, when as many messages as the queue holds are rendered behind it, until half the
    /// queue has gone (so that the producer wakes once for many messages rather than once for
    /// each: a thread switch costs more than a render), and hands them over. False when the run
    /// halted meanwhile.
    pub async fn room(
        &mut self,
        halted: &mut watch::Receiver<Option<Stopped>>,
    ) -> Result<bool, Arc<SendLogError>> {
        if self.rendered.len() < self.queue.max_capacity() {
            return Ok(true);
        }
        let refill = (self.queue.max_capacity() / 2).max(1);
        let room = tokio::select! {
            permits = self.queue.reserve_many(refill) => permits.is_ok(),
            _ = halted.changed() => false,
        };
        if room {
            self.hand_over().await?;
        }
        Ok(room)
    }

    /// Puts `job` (rendered, no attempt yet) behind the others, and hands to the queue as many
    /// as it has room for.
    pub async fn push(&mut self, job: Job) -> Result<(), Arc<SendLogError>> {
        self.rendered.push_back(job);
        self.hand_over().await?;
        if self.rendered.is_empty() {
            self.behind = 0;
            return Ok(());
        }
        // The queue is full: the connections wait on the log's sync. When the log's thread
        // shares this thread's core (a busy machine, or the bench pinned to one core), it waits,
        // once woken by its sync or a hurry, until this thread's time slice ends (a millisecond
        // or more) before it can answer; meanwhile the queue stays full. So every few renders
        // this thread offers it the core. A `sched_yield` costs a microsecond and returns at once
        // when nothing else waits for the core; it changes when the log's thread runs, never
        // what it writes nor in which order.
        self.behind += 1;
        if self.behind.is_multiple_of(YIELD_EVERY) {
            std::thread::yield_now();
        }
        Ok(())
    }

    /// Writes the attempts of the first messages waiting, in order, while the queue has room.
    async fn hand_over(&mut self) -> Result<(), Arc<SendLogError>> {
        while !self.rendered.is_empty() {
            let Ok(slot) = self.queue.try_reserve() else {
                // Full (or closed, which the run's end handles). Every attempt the queue may
                // hold is written: with a server that answers at once, the connections wait
                // on their sync, so the writer should not gather more first. Safe: a hurried
                // sync is only an earlier one (see `LogWriter::hurry`).
                if !self.hurried {
                    self.hurried = true;
                    self.log.hurry();
                }
                return Ok(());
            };
            self.hurried = false;
            let mut job = self.rendered.pop_front().expect("not empty");
            // Written now, synced while the message waits its turn.
            let attempt = Record::new(Event::attempt(self.fingerprint), &job.rcpt, &job.message_id);
            job.attempt = Some(self.log.submit(attempt).await?);
            slot.send(job);
        }
        Ok(())
    }

    /// At the end of the list (or of the run's budget): hands every message still waiting to
    /// the queue, as room frees, and closes it. If the run halts meanwhile, the rest are
    /// dropped: no attempt was written for them, so they stay pending for the next run.
    pub async fn close(
        mut self,
        halted: &mut watch::Receiver<Option<Stopped>>,
    ) -> Result<(), Arc<SendLogError>> {
        while !self.rendered.is_empty() && halted.borrow().is_none() {
            let room = tokio::select! {
                slot = self.queue.reserve() => slot.is_ok(),
                _ = halted.changed() => false,
            };
            if !room {
                break;
            }
            self.hand_over().await?;
        }
        Ok(())
    }
}
