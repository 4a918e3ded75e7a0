//! Group commit: one thread owns the send log and makes batches of records durable together.
//!
//! Concurrent deliveries each need their `attempt` durable before DATA and their outcome durable
//! before it is counted. Syncing once per record would cap a run at the disk's sync rate, so the
//! writer takes every record waiting at that moment, writes them in one go, syncs once, and
//! then answers each caller. Under load batches grow; alone, a record is synced at once.
//!
//! The thread is a plain OS thread because a sync blocks; the async side only awaits an answer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{Lease, Record, SendLog, SendLogError};

/// Records waiting for the writer; senders wait (backpressure) when it is full.
const QUEUE: usize = 1024;

/// How long a busy writer gathers records before a sync, unless a caller says it is waiting on
/// them ([`LogWriter::hurry`]). The engine writes attempts ahead of sending and hurries the
/// writer when all it may write ahead is waiting, so this delays no message; it bounds syncs
/// to a few hundred a second, each of which costs the core more than a hundred records do.
/// Long enough that, with a server that answers at once, a batch is what the queue may hold
/// (128 attempts, ~2.5 ms of rendering on one core) rather than what the clock allows: at
/// 2 ms, a pass of section 2 of the bench made ~220 syncs; at 4 ms, ~160, for the same
/// attempts ahead. The price, only where rendering cannot keep the queue full (nobody
/// hurries then): an outcome may wait this long to be durable, and a crash in that time
/// leaves its message in doubt, to be sent again.
const GATHER: Duration = Duration::from_millis(4);

/// How long a write may go unanswered before the log counts as stalled ([`LogWriter::stalled`]).
/// A healthy log answers in milliseconds (a sync on a busy disk, a commit on a database nearby);
/// one silent this long is most likely cut off (a database across a partition, where packets
/// are dropped without a reset and the connection's own timeouts take many seconds).
pub const STALL: Duration = Duration::from_millis(200);

struct Pending {
    record: Record,
    durable: oneshot::Sender<Result<Written, Arc<SendLogError>>>,
}

/// What became of a record once the log answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Durable: a crash cannot lose it.
    Durable,
    /// An attempt the log refused: another sender holds the person (a log shared by several
    /// senders). Nothing was written; the message must not go.
    Refused,
}

/// A handle to the writer thread; clone it for each task that writes.
#[derive(Clone)]
pub struct LogWriter {
    queue: mpsc::Sender<Pending>,
    /// Set by a caller waiting on what is written so far; the writer clears it when it takes
    /// a batch.
    hurry: Arc<AtomicBool>,
    thread: std::thread::Thread,
    /// When the write in progress began, in nanoseconds after `epoch` (plus one); 0 between
    /// writes.
    writing_since: Arc<AtomicU64>,
    epoch: Instant,
    /// Why the log failed, once it has: nothing more will be written.
    failure: Arc<OnceLock<Arc<SendLogError>>>,
    /// The log's lease on its claims, when it shares them with other senders.
    lease: Option<Lease>,
}

impl LogWriter {
    /// Starts the writer thread over `log`. The thread ends when every handle is dropped; join
    /// it to be sure everything written was synced. It hands the log back, for what is asked
    /// of it after the run.
    pub fn spawn(mut log: Box<dyn SendLog>) -> (LogWriter, JoinHandle<Box<dyn SendLog>>) {
        let lease = log.lease();
        let (spacing, idle_wait) = (log.spacing(), log.idle_wait());
        let (queue, mut incoming) = mpsc::channel::<Pending>(QUEUE);
        let hurry = Arc::new(AtomicBool::new(false));
        let hurried = Arc::clone(&hurry);
        let writing_since = Arc::new(AtomicU64::new(0));
        let since = Arc::clone(&writing_since);
        let epoch = Instant::now();
        let failure = Arc::new(OnceLock::new());
        let failed_with = Arc::clone(&failure);
        let thread = std::thread::Builder::new()
            .name("missive-sendlog".into())
            .spawn(move || {
                // After a failure nothing more is written: a gap in the log would be a lie.
                let mut failed: Option<Arc<SendLogError>> = None;
                let mut last_sync: Option<Instant> = None;
                while let Some(first) = incoming.blocking_recv() {
                    // Under a steady stream, gather a little before syncing: a batch of one or
                    // two records a sync would spend more on syncs than on the records (and a
                    // core on the kernel's journal). An idle writer syncs a lone record at once
                    // (unless its log asks it to wait, see `SendLog::idle_wait`), and a hurried
                    // one stops gathering. But a log that asks for its writes spaced gets them
                    // so, hurried or not (see `SendLog::spacing`).
                    let spaced = last_sync
                        .and_then(|last| (last + spacing).checked_duration_since(Instant::now()));
                    if let Some(left) = spaced {
                        std::thread::sleep(left);
                    }
                    let gather = if last_sync.is_some_and(|last| last.elapsed() < GATHER) {
                        GATHER
                    } else {
                        idle_wait
                    };
                    if !gather.is_zero() {
                        let until = Instant::now() + gather;
                        while !hurried.load(Ordering::Acquire) {
                            let Some(left) = until.checked_duration_since(Instant::now()) else {
                                break;
                            };
                            std::thread::park_timeout(left);
                        }
                    }
                    // Cleared before the batch is taken: a hurry for records sent after this
                    // point is for the next batch.
                    hurried.store(false, Ordering::Release);
                    // The records move to the log and the answers wait apart: nothing is
                    // copied on the way.
                    let (mut records, mut answers) = (Vec::new(), Vec::new());
                    let mut next = Some(first);
                    while let Some(Pending { record, durable }) = next {
                        records.push(record);
                        answers.push(durable);
                        next = if records.len() < QUEUE {
                            incoming.try_recv().ok()
                        } else {
                            None
                        };
                    }
                    let result = match &failed {
                        Some(error) => Err(Arc::clone(error)),
                        None => {
                            let began = epoch.elapsed().as_nanos() as u64 + 1;
                            since.store(began, Ordering::Release);
                            let result = log.append(&records).map_err(Arc::new);
                            since.store(0, Ordering::Release);
                            result
                        }
                    };
                    last_sync = Some(Instant::now());
                    if let Err(error) = &result {
                        failed.get_or_insert_with(|| Arc::clone(error));
                        let _ = failed_with.set(Arc::clone(error));
                    }
                    let mut refused = result.as_ref().map_or(&[][..], Vec::as_slice).iter();
                    let mut next_refused = refused.next();
                    for (at, durable) in answers.into_iter().enumerate() {
                        let answer = match &result {
                            Err(error) => Err(Arc::clone(error)),
                            Ok(_) if next_refused == Some(&at) => {
                                next_refused = refused.next();
                                Ok(Written::Refused)
                            }
                            Ok(_) => Ok(Written::Durable),
                        };
                        // A caller that gave up waiting is no reason to stop the others.
                        let _ = durable.send(answer);
                    }
                }
                log
            })
            .expect("the OS can start a thread");
        let writer = LogWriter {
            queue,
            hurry,
            thread: thread.thread().clone(),
            writing_since,
            epoch,
            failure,
            lease,
        };
        (writer, thread)
    }

    /// Appends `record`; returns once it is durable. The caller waits, so the writer does not
    /// gather more before syncing it. (Only for records no log refuses: outcomes.)
    pub async fn write(&self, record: Record) -> Result<(), Arc<SendLogError>> {
        let durable = self.submit(record).await?;
        self.hurry();
        durable.wait().await.map(drop)
    }

    /// False once the log's lease on its claims may have run out (a log shared by several
    /// senders that could not renew it): no message may be handed over any more, since another
    /// sender may take its person over. Always true for a log of one sender.
    pub fn live(&self) -> bool {
        self.lease.as_ref().is_none_or(Lease::live)
    }

    /// Queues `record` and returns at once, with a handle that resolves when it is durable.
    /// Records become durable in the order they were submitted, so a later record's
    /// durability vouches for every earlier one: a caller can let one record's sync overlap
    /// its next network round trip, and share a sync with its next record.
    pub async fn submit(&self, record: Record) -> Result<Durable, Arc<SendLogError>> {
        let (durable, answer) = oneshot::channel();
        self.queue
            .send(Pending { record, durable })
            .await
            .map_err(|_| stopped())?;
        Ok(Durable {
            answer,
            known: None,
        })
    }

    /// True while a write has gone unanswered for longer than [`STALL`]. The engine starts no
    /// new message then: every message it sent would be one whose outcome cannot be recorded,
    /// in doubt, and mailed again by the next run. A log that answers again lifts it; one that
    /// fails ends the run as any failed write does.
    pub fn stalled(&self) -> bool {
        match self.writing_since.load(Ordering::Acquire) {
            0 => false,
            began => {
                let began = Duration::from_nanos(began - 1);
                self.epoch.elapsed().saturating_sub(began) > STALL
            }
        }
    }

    /// Why the log failed, once a write has: every later one fails the same way.
    pub fn failure(&self) -> Option<Arc<SendLogError>> {
        self.failure.get().cloned()
    }

    /// Says that a caller is waiting on the records submitted so far: the writer syncs them
    /// without gathering more. It changes when they become durable, never their order nor
    /// that each caller hears only once its record is durable.
    pub fn hurry(&self) {
        if !self.hurry.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

/// A record on its way to the disk.
pub struct Durable {
    answer: oneshot::Receiver<Result<Written, Arc<SendLogError>>>,
    /// The answer once [`Durable::ready`] has seen it, for a later `wait` or `ready`.
    known: Option<Result<Written, Arc<SendLogError>>>,
}

impl Durable {
    /// Waits until the record is durable, or refused.
    pub async fn wait(self) -> Result<Written, Arc<SendLogError>> {
        match self.known {
            Some(known) => known,
            None => self.answer.await.map_err(|_| stopped())?,
        }
    }

    /// `Some` once the writer has answered: durable, refused, or why not.
    pub fn ready(&mut self) -> Option<Result<Written, Arc<SendLogError>>> {
        if self.known.is_none() {
            self.known = match self.answer.try_recv() {
                Ok(result) => Some(result),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(Err(stopped())),
            };
        }
        self.known.clone()
    }
}

fn stopped() -> Arc<SendLogError> {
    Arc::new(SendLogError::Io {
        path: "(send log writer)".into(),
        source: std::io::Error::other("the send log writer stopped"),
    })
}

#[cfg(test)]
mod tests;
