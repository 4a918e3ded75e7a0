//! The connection's thread: a sender's session with the database, from opening the campaign
//! (tables, campaign row, registration, replay) to the lease ended at the end of the run. It
//! commits each batch `PgLog::append` hands it, in the order given (and answers what else the
//! log is asked), and renews the lease over a second connection beside them; it ends when the
//! log is dropped.

use std::sync::mpsc as sync_channel;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::errors::{database_error, describe, timely};
use super::people;
use super::permits::Granting;
use super::rows::{self, Statements};
use super::{PgTarget, Request, connect, lease_length, runtime, schema, senders};
use crate::sendlog::{Lease, Record, Replay, SendLogError};

pub(super) type Opened = Result<(Replay, String, Lease, Granting), SendLogError>;

/// The connection's thread: opens, answers `opened`, then commits each batch and renews the
/// lease until the log is dropped, and then ends the lease.
pub(super) fn serve(
    target: &PgTarget,
    campaign: &str,
    letter: Option<&str>,
    opened: sync_channel::SyncSender<Opened>,
    mut incoming: mpsc::UnboundedReceiver<Request>,
) {
    let runtime = match runtime(&target.shown) {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = opened.send(Err(error));
            return;
        }
    };
    runtime.block_on(async {
        let mut session = match Session::open(target, campaign, letter).await {
            Ok((session, replay)) => {
                let lease = session.lease.clone();
                let granting = Granting {
                    runtime: tokio::runtime::Handle::current(),
                    target: target.clone(),
                    campaign: session.campaign,
                };
                let _ = opened.send(Ok((replay, session.uid.clone(), lease, granting)));
                session
            }
            Err(error) => {
                let _ = opened.send(Err(error));
                return;
            }
        };
        // The lease is renewed over a connection of its own, beside the batches: a batch
        // waiting on a row another sender holds locked (one cut off mid-transaction, until the
        // database ends it) must not stop the renewals, and so this sender.
        let renewing = match session.renewer.take() {
            Some(renewer) => tokio::spawn(renew(renewer, session.renewal())),
            None => return,
        };
        while let Some(request) = incoming.recv().await {
            match request {
                Request::Append { records, done } => {
                    let _ = done.send(session.append(&records).await);
                }
                Request::Unsettled { done } => {
                    let counted =
                        people::unsettled(&session.client, session.campaign, &session.log);
                    let _ = done.send(counted.await);
                }
            }
        }
        renewing.abort();
        session.close().await;
    });
}

/// What renewing a lease needs.
struct Renewal {
    log: String,
    sender: i64,
    length: Duration,
    lease: Lease,
}

/// Renews the lease every quarter lease, until aborted; a renewal that fails or is late only
/// leaves the lease's local deadline where it was (the engine stops once it passes).
async fn renew(client: Client, renewal: Renewal) {
    let Renewal {
        log,
        sender,
        length,
        lease,
    } = renewal;
    let mut every = tokio::time::interval(lease.every());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let sent = Instant::now();
        let renewed = senders::renew(&client, sender, length);
        match tokio::time::timeout(lease.every(), renewed).await {
            Ok(Ok(true)) => lease.renewed(sent),
            Ok(Ok(false)) => {
                // Others may have taken its people over: it must not hand more over.
                tracing::warn!(log, "the lease had run out in the database: not renewed");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(log, error = %describe(&e), "the lease could not be renewed");
            }
            Err(_) => tracing::warn!(log, "the lease's renewal got no answer in time"),
        }
    }
}

/// One connection: one sender of one campaign.
struct Session {
    client: Client,
    log: String,
    campaign: i32,
    uid: String,
    /// This sender's row in `missive.senders`.
    sender: i64,
    lease: Lease,
    length: Duration,
    /// The connection the lease is renewed over, until the renewals take it.
    renewer: Option<Client>,
    statements: Statements,
    /// Statements sent for batches, and records written: the database must see batches, not
    /// a statement per message.
    sent: (u64, u64),
}

impl Session {
    async fn open(
        target: &PgTarget,
        campaign: &str,
        letter: Option<&str>,
    ) -> Result<(Session, Replay), SendLogError> {
        let log = target.shown.clone();
        let mut client = connect(target).await?;
        timely(&log, schema::migrate(&mut client, &log)).await?;
        let row = timely(&log, schema::campaign_row(&client, campaign, &log)).await?;
        timely(&log, schema::fence(&client, &row, &log, campaign)).await?;
        let length = lease_length();
        // A sender cut off mid-transaction must not hold its people's rows locked past its
        // lease: the others' claims would wait on them. The database ends such a transaction
        // (and the connection) after half a lease.
        let idle = format!(
            "SET idle_in_transaction_session_timeout = {}",
            (length / 2).as_millis()
        );
        timely(&log, async {
            client
                .batch_execute(&idle)
                .await
                .map_err(|e| database_error(&log, &e))
        })
        .await?;
        let registered = Instant::now();
        let registered_as = senders::register(&client, row.id, length, letter, &log);
        let sender = timely(&log, registered_as).await?;
        let lease = Lease::new(length, registered);
        let statements = timely(&log, Statements::prepare(&client, &log)).await?;
        let renewer = connect(target).await?;
        let mut replay = people::replay(&client, &renewer, row.id, &log).await?;
        replay.set_campaign(campaign);
        let elsewhere = senders::letters_elsewhere(&client, row.id, sender, &log);
        replay.set_sending_elsewhere(timely(&log, elsewhere).await?);
        tracing::info!(log, sender, lease = ?length, "registered as a sender of the campaign");
        let session = Session {
            client,
            log,
            campaign: row.id,
            uid: row.uid,
            sender,
            lease,
            length,
            renewer: Some(renewer),
            statements,
            sent: (0, 0),
        };
        Ok((session, replay))
    }

    async fn append(&mut self, records: &[Record]) -> Result<Vec<usize>, SendLogError> {
        self.sent.1 += records.len() as u64;
        // A write unanswered for a lease's length: the lease is lost anyway, and the run stops
        // sooner than the general answer timeout would let it.
        rows::append(
            &mut self.client,
            &self.statements,
            (self.campaign, self.sender),
            records,
            (&self.log, self.length),
            &mut self.sent.0,
        )
        .await
    }

    /// What the renewals of this session's lease need.
    fn renewal(&self) -> Renewal {
        Renewal {
            log: self.log.clone(),
            sender: self.sender,
            length: self.length,
            lease: self.lease.clone(),
        }
    }

    /// Ends the lease: what this sender leaves in doubt may be taken over at once.
    async fn close(&self) {
        let ended = senders::renew(&self.client, self.sender, Duration::ZERO);
        let _ = tokio::time::timeout(self.lease.every(), ended).await;
        let (statements, records) = self.sent;
        tracing::info!(
            log = self.log,
            statements,
            records,
            per_record = statements as f64 / records.max(1) as f64,
            "the send log's statements"
        );
    }
}
