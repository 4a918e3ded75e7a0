//! The addresses servers refuse as dead mailboxes during a send go to the campaign's `bounced`
//! list, so that the next campaign does not mail them. The send log keeps them as it keeps every
//! permanent refusal, `failed` with the server's reply; but the log is this campaign's alone.
//!
//! The engine tells of each permanent refusal of a recipient ([`Refusal`]); a thread of its own
//! reads them, keeps those that [`crate::refusal::meaning`] reads as a dead mailbox (not a
//! policy or content refusal, not a full mailbox), and appends them with an [`Appender`]: a
//! lock and a sync before it returns, blocking I/O kept off the thread that drives the
//! connections. Refusals that come together go in one `add`, one sync. The file is opened at
//! the first dead mailbox: a run that meets none creates nothing.
//!
//! The `failed` record is written before the address is told of, and a crash between the two
//! leaves the address out of `bounced`: the next campaign mails it once more, and is refused
//! once more, which is the lesser harm.

use std::path::PathBuf;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::refusal::{Meaning, meaning};
use crate::send::Refusal;
use crate::suppression::{Appender, Reason};

/// Refusals told of and not yet read: a worker waits for room beyond this.
const WAITING: usize = 64;

/// The thread that records dead mailboxes; see the module's doc.
pub(super) struct DeadMailboxes {
    thread: JoinHandle<Recorded>,
}

/// What the thread did.
#[derive(Debug, Default)]
pub(super) struct Recorded {
    pub path: PathBuf,
    /// Addresses added to the list by this run.
    pub added: Vec<String>,
    /// Dead mailboxes the list held already (another process added them meanwhile).
    pub known: usize,
    /// Dead mailboxes that could not be written, and why the last write failed.
    pub missed: Vec<String>,
    pub error: Option<String>,
}

impl DeadMailboxes {
    /// Starts the thread that appends to `path`; the engine tells of refusals on the sender.
    pub(super) fn start(path: PathBuf) -> (mpsc::Sender<Refusal>, DeadMailboxes) {
        let (tell, refusals) = mpsc::channel(WAITING);
        let thread = std::thread::Builder::new()
            .name("dead-mailboxes".into())
            .spawn(move || record(path, refusals))
            .expect("a thread starts");
        (tell, DeadMailboxes { thread })
    }

    /// Waits until every refusal told of is recorded: the engine must have ended (its sender
    /// dropped), or this waits for ever.
    pub(super) fn finish(self) -> Recorded {
        self.thread.join().unwrap_or_else(|_| Recorded {
            error: Some("the thread recording dead mailboxes crashed".into()),
            ..Recorded::default()
        })
    }
}

fn record(path: PathBuf, mut refusals: mpsc::Receiver<Refusal>) -> Recorded {
    let mut recorded = Recorded {
        path: path.clone(),
        ..Recorded::default()
    };
    let mut appender: Option<Appender> = None;
    while let Some(first) = refusals.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(more) = refusals.try_recv() {
            batch.push(more);
        }
        let dead: Vec<&str> = batch
            .iter()
            .filter(|refusal| meaning(&refusal.reply) == Meaning::DeadMailbox)
            .map(|refusal| refusal.rcpt.as_str())
            .collect();
        if dead.is_empty() {
            continue;
        }
        // Opened again after a failure: the next batch may find the folder mended.
        let added = match appender.as_mut() {
            Some(open) => open.add(&dead),
            None => Appender::open(&path, Reason::Bounced)
                .and_then(|open| appender.insert(open).add(&dead)),
        };
        match added {
            Ok(new) => {
                for (address, new) in dead.iter().zip(new) {
                    if new {
                        tracing::info!(rcpt = %address, list = %path.display(), "a dead mailbox: added to the bounced list");
                        recorded.added.push((*address).to_owned());
                    } else {
                        recorded.known += 1;
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot add dead mailboxes to the bounced list: the next campaigns may mail them");
                appender = None;
                recorded.missed.extend(dead.iter().map(|a| (*a).to_owned()));
                recorded.error = Some(error.to_string());
            }
        }
    }
    recorded
}
