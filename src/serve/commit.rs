//! Group commit of unsubscribes: many concurrent POSTs, one `fsync`.
//!
//! A thread of its own owns each campaign's [`Appender`] (blocking std I/O, and an `fsync` that
//! may take milliseconds: it must never stall the tasks answering HTTP). Requests queue on a
//! bounded channel; the thread takes the first, then whatever else has queued meanwhile (up to
//! [`MAX_BATCH`]), and writes each campaign's share in one [`Appender::add`], which syncs once
//! before it returns. Only then does each request learn its answer, so a 200 always means the
//! address is on disk. While one batch syncs the next one gathers: the busier the endpoint,
//! the more addresses each sync carries.
//!
//! The thread ends when every [`Committer`] is dropped and the queue is empty: nothing
//! accepted is abandoned on shutdown.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::suppression::{Appender, SuppressionError};

/// The most requests one batch takes: bounds the time of one write, and so the wait of the
/// first request in it.
pub const MAX_BATCH: usize = 1024;
/// Requests waiting for the thread beyond this make their senders wait (back-pressure).
const QUEUE: usize = 4096;

struct Job {
    site: usize,
    address: String,
    answer: oneshot::Sender<Result<bool, Arc<SuppressionError>>>,
}

/// The way to the commit thread; cheap to clone, one per request handler.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Job>,
}

/// Why an address could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Write(Arc<SuppressionError>),
    #[error("the commit thread is gone")]
    Gone,
}

impl Committer {
    /// Starts the thread with one appender a site (indexed as the sites are).
    pub fn start(appenders: Vec<Appender>) -> std::io::Result<(Committer, JoinHandle<()>)> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("missive-commit".into())
            .spawn(move || run(appenders, jobs))?;
        Ok((Committer { queue }, thread))
    }

    /// Adds `address` to site `site`'s file; resolves once it is durable. `Ok(false)`: it was
    /// there already, nothing was written.
    pub async fn add(&self, site: usize, address: String) -> Result<bool, CommitError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Job {
                site,
                address,
                answer,
            })
            .await
            .map_err(|_| CommitError::Gone)?;
        match answered.await {
            Ok(Ok(added)) => Ok(added),
            Ok(Err(error)) => Err(CommitError::Write(error)),
            Err(_) => Err(CommitError::Gone),
        }
    }
}

fn run(mut appenders: Vec<Appender>, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        for (site, appender) in appenders.iter_mut().enumerate() {
            let (mine, others): (Vec<Job>, Vec<Job>) =
                batch.drain(..).partition(|job| job.site == site);
            batch = others;
            if mine.is_empty() {
                continue;
            }
            let addresses: Vec<&str> = mine.iter().map(|job| job.address.as_str()).collect();
            match appender.add(&addresses) {
                Ok(added) => {
                    // One line a sync: bench/serve.sh counts them to show the batching.
                    tracing::debug!(site, requests = added.len(), "batch synced");
                    for (job, added) in mine.into_iter().zip(added) {
                        let _ = job.answer.send(Ok(added));
                    }
                }
                Err(error) => {
                    tracing::error!("{error}");
                    let error = Arc::new(error);
                    for job in mine {
                        let _ = job.answer.send(Err(Arc::clone(&error)));
                    }
                }
            }
        }
        // A site index out of range is a bug of the caller; its request learns it as `Gone`.
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suppression::Reason;

    #[test]
    fn concurrent_adds_land_once_each_and_say_whether_they_were_new() {
        let dir = tempfile::tempdir().unwrap();
        let paths = [dir.path().join("a/u.txt"), dir.path().join("b/u.txt")];
        let appenders = paths
            .iter()
            .map(|p| Appender::open(p, Reason::Unsubscribed).unwrap())
            .collect();
        let (committer, thread) = Committer::start(appenders).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let answers = runtime.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..300 {
                let committer = committer.clone();
                // Every address twice, the second time in another case.
                let address = if i < 150 {
                    format!("p{i}@example.com")
                } else {
                    format!("P{}@example.com", i - 150)
                };
                tasks.push(tokio::spawn(async move {
                    committer.add(i % 2, address).await.unwrap()
                }));
            }
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            answers
        });
        drop(committer);
        thread.join().unwrap();
        assert_eq!(answers.iter().filter(|new| **new).count(), 150);
        let lines: usize = paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
            .sum();
        assert_eq!(lines, 150);
    }
}
