//! One SMTP transaction over a worker's connection: the message's MAIL, RCPT and DATA, with
//! the next queued message sent ahead behind it when the server pipelines, and the outcome
//! written after the server's reply. The order of the records, and what each reply means, are
//! the worker's rules (see `worker`); this is where they are carried out for one message.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{Mutex, mpsc};

use super::delivery::{Carrier, Delivery};
use super::report::Outcome;
use super::shared::Shared;
use super::worker::Job;
use super::{Refusal, Stopped};
use crate::sendlog::{Durable, Event, Record, SendLogError, Written, timestamp};
use crate::smtp::{RelayName, Trouble};

/// How one transaction ended.
pub(super) enum Transaction {
    Done {
        outcome: Outcome,
        reusable: bool,
        /// The outcome record, on its way to the disk (none for a message left in doubt).
        durable: Option<Durable>,
        /// The next message, taken early: the next one to carry (boxed: a job is large, and
        /// most transactions end without one).
        next: Option<Box<Job>>,
    },
    Again,
}

/// One message over `connection`, with its records written in order.
pub(super) async fn transact<D: Delivery>(
    shared: &Shared<D>,
    connection: &mut D::Connection,
    relay: &D::Relay,
    job: &Job,
    attempt: &mut Option<Durable>,
    queue: &Mutex<mpsc::Receiver<Job>>,
) -> Result<Transaction, Arc<SendLogError>> {
    let (bytes, envelope) = (&job.data, &job.envelope);
    let record = |event| Record::new(event, &job.rcpt, &job.message_id);

    // The attempt was written when the message was queued: it must be durable before DATA.
    // A log shared by several senders may have refused it (the attempt is the claim): another
    // sender holds the person, and this one sends nothing for them.
    if let Some(attempt) = attempt.take()
        && attempt.wait().await? == Written::Refused
    {
        return Ok(Transaction::Done {
            outcome: Outcome::Taken,
            reusable: true,
            durable: None,
            next: None,
        });
    }
    // The lease may have run out while the message waited its turn: another sender may take
    // the person over now. (Any other stop leaves a message this far in hand to finish: its
    // turn in the pace is taken, its attempt durable.)
    if !shared.log.live() {
        shared.stop(Stopped::LeaseLost);
        return Ok(Transaction::Again);
    }
    match connection.start(envelope, bytes).await {
        Ok(()) => {}
        Err(trouble @ Trouble::Refused { code: 421, .. }) => {
            // The server closes the channel: about the server, not this recipient.
            if shared.route.broke(relay, &trouble) {
                shared.stop(Stopped::Unreachable(trouble.describe()));
            }
            return Ok(Transaction::Again);
        }
        Err(trouble) => {
            // Refused, or lost before the message was sent: the server cannot have it.
            let broken = matches!(trouble, Trouble::Broken(_));
            if broken {
                if shared.route.broke(relay, &trouble) {
                    shared.stop(Stopped::Unreachable(trouble.describe()));
                }
            } else {
                shared.route.answered();
            }
            let reusable = !broken && connection.reset().await;
            let (outcome, durable) = refused(shared, job, &trouble, &record).await?;
            return Ok(Transaction::Done {
                outcome,
                reusable,
                durable: Some(durable),
                next: None,
            });
        }
    }
    let next = take_next(shared, connection, relay, queue)?.map(Box::new);
    let then = next
        .as_ref()
        .filter(|next| next.admitted)
        .map(|next| (&next.envelope, next.data.as_slice()));
    match connection.finish_data(bytes, then).await {
        Ok(reply) => {
            shared.route.answered();
            // The log names the relay only when it was not the primary.
            let name = D::name(relay);
            let via = (name == RelayName::Fallback).then(|| name.as_str().to_owned());
            let event = Event::Sent { reply, via };
            // Every outcome, sent ones too, for `MISSIVE_LOG=debug` (see `refused`).
            tracing::debug!(rcpt = %job.rcpt, ?event, "outcome");
            let durable = shared.log.submit(record(event)).await?;
            Ok(Transaction::Done {
                outcome: Outcome::Sent,
                reusable: true,
                durable: Some(durable),
                next,
            })
        }
        Err(Trouble::Broken(why)) => {
            // The server may or may not have the message: no outcome is written, so the
            // attempt stays in doubt and the next run decides.
            tracing::warn!(rcpt = %job.rcpt, message_id = %job.message_id, %why, "no reply after the message: in doubt");
            if shared.route.broke(relay, &Trouble::Broken(why.clone())) {
                shared.stop(Stopped::Unreachable(why));
            }
            Ok(Transaction::Done {
                outcome: Outcome::Unanswered,
                reusable: false,
                durable: None,
                next,
            })
        }
        Err(trouble) => {
            shared.route.answered();
            let (outcome, durable) = refused(shared, job, &trouble, &record).await?;
            Ok(Transaction::Done {
                outcome,
                reusable: !trouble.closes_connection(),
                durable: Some(durable),
                next,
            })
        }
    }
}

/// The next job in the queue, if one is there right now, to go out behind the message in
/// hand. It goes in the same write only when nothing would hold it back: its attempt durable
/// and the pace letting it go now (then it comes back `admitted`, its attempt taken).
/// Otherwise it is still the next one this worker carries, the usual way.
fn take_next<D: Delivery>(
    shared: &Shared<D>,
    connection: &D::Connection,
    relay: &D::Relay,
    queue: &Mutex<mpsc::Receiver<Job>>,
) -> Result<Option<Job>, Arc<SendLogError>> {
    if !connection.pipelines()
        || shared.stopping()
        || shared.route.should_leave(relay)
        || shared.log.stalled()
    {
        return Ok(None);
    }
    let Some(mut next) = queue.try_lock().ok().and_then(|mut q| q.try_recv().ok()) else {
        return Ok(None);
    };
    // A refused attempt stays with the job: its transaction ends before MAIL.
    let durable = match next.attempt.as_mut().map(Durable::ready) {
        None => true,
        Some(None) => false,
        Some(Some(result)) => result? == Written::Durable,
    };
    if durable {
        next.attempt = None;
        next.admitted = shared.pace.try_admit();
    }
    Ok(Some(next))
}

/// Writes the outcome of a refusal (or of a connection lost before DATA): failed when the
/// server said 5xx, deferred with the next attempt's time otherwise. Returns without waiting
/// for it to be durable.
async fn refused<D: Delivery>(
    shared: &Shared<D>,
    job: &Job,
    trouble: &Trouble,
    record: &impl Fn(Event) -> Record,
) -> Result<(Outcome, Durable), Arc<SendLogError>> {
    let reply = trouble.describe();
    let due = (!trouble.is_permanent()).then(|| {
        shared
            .retry
            .next_attempt(job.attempts_before + 1, SystemTime::now())
    });
    let too_late = due
        .zip(shared.send_before)
        .filter(|(due, before)| due >= before);
    let (event, outcome) = match (due, too_late) {
        (None, _) => (Event::Failed { reply }, Outcome::Failed),
        // A retry after `send_before` would never go: failed now, so the run can end with a
        // final outcome for everyone, as a later run's `decide` would record it.
        (Some(_), Some((_, before))) => {
            let reply = format!(
                "{reply} (send_before ({}) passed before a retry)",
                timestamp(before)
            );
            (Event::Failed { reply }, Outcome::Failed)
        }
        (Some(due), None) => {
            let event = Event::Deferred {
                reply,
                retry_at: Some(timestamp(due)),
            };
            (event, Outcome::Deferred)
        }
    };
    tracing::debug!(rcpt = %job.rcpt, ?event, "outcome");
    let durable = shared.log.submit(record(event)).await?;
    if let Some(refusals) = shared
        .refusals
        .as_ref()
        .filter(|_| trouble.refuses_recipient())
    {
        let refusal = Refusal {
            rcpt: job.rcpt.clone(),
            reply: trouble.describe(),
        };
        // A listener gone away hears nothing more: the log has the refusal all the same.
        let _ = refusals.send(refusal).await;
    }
    Ok((outcome, durable))
}
