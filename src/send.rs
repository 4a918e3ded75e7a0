//! The send engine: from a stream of recipients to messages handed to an SMTP server, each
//! attempt and outcome recorded in the send log.
//!
//! For every valid row the engine asks the log first (sent and failed people are skipped, so a
//! second run resumes where the first stopped), then renders, records an `attempt`, delivers, and
//! records the outcome. The server's reply decides the outcome: 2xx sent, 4xx deferred (tried
//! again by a later run), 5xx failed for good. When the server cannot be reached at all the run
//! stops: the message in hand stays *in doubt* and is sent again, with the same Message-ID, next
//! time.

use std::time::{Duration, Instant, SystemTime};

use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::campaign::{Endpoint, Security};
use crate::letter::Letter;
use crate::message::Composer;
use crate::recipients::{RecipientReader, RecipientsError, Row, RowError};
use crate::render::{Frame, render};
use crate::sendlog::{Event, Record, SendLog, SendLogError, Status};

/// The run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Recipients(#[from] RecipientsError),
    #[error(transparent)]
    Log(#[from] SendLogError),
    #[error("cannot set up the SMTP transport for {endpoint}: {message}")]
    Transport { endpoint: String, message: String },
}

/// An SMTP server to deliver to, through lettre's pooled async transport.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    endpoint: Endpoint,
}

/// What became of one message.
#[derive(Debug)]
pub enum Delivery {
    Sent(String),
    /// 4xx: worth trying again later.
    Deferred(String),
    /// 5xx: the server will never take it.
    Failed(String),
    /// No reply at all (refused, timed out, TLS, connection lost): the server may or may not
    /// have the message.
    Unreachable(String),
}

impl Mailer {
    /// A transport to `endpoint`: TLS (verified against the webpki roots) unless the endpoint is a
    /// plain loopback one, with `credentials` if given, and `timeout` on every command.
    pub fn new(
        endpoint: &Endpoint,
        credentials: Option<Credentials>,
        timeout: Duration,
    ) -> Result<Mailer, SendError> {
        let builder = match endpoint.security {
            Security::Plain => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &endpoint.host,
            )),
            Security::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&endpoint.host)
            }
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&endpoint.host),
        }
        .map_err(|e| SendError::Transport {
            endpoint: endpoint.to_string(),
            message: e.to_string(),
        })?;
        let mut builder = builder.port(endpoint.port).timeout(Some(timeout));
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        Ok(Mailer {
            transport: builder.build(),
            endpoint: endpoint.clone(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Hands `message` to the server and classifies the reply.
    pub async fn deliver(&self, message: Message) -> Delivery {
        match self.transport.send(message).await {
            Ok(response) => {
                let text: Vec<&str> = response.message().collect();
                Delivery::Sent(format!("{} {}", response.code(), text.join(" ")))
            }
            Err(e) if e.is_permanent() => Delivery::Failed(e.to_string()),
            Err(e) if e.is_transient() => Delivery::Deferred(e.to_string()),
            Err(e) => Delivery::Unreachable(e.to_string()),
        }
    }
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
    /// SIGINT or SIGTERM: the message in hand was finished and logged, no new one was taken.
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
        tracing::warn!("signal received: finishing the message in hand, then stopping");
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
    pub rejected: Vec<RowError>,
    pub stopped: Option<Stopped>,
}

impl RunReport {
    /// True when every recipient now has a final outcome: nothing for a later run to do.
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none() && self.deferred == 0
    }
}

/// The letter and headers every message of the campaign shares.
pub struct Content<'a> {
    pub letter: &'a Letter,
    pub frame: Frame<'a>,
    pub composer: &'a Composer,
}

/// Sends to every row of `recipients` that the log has no final outcome for.
pub async fn run(
    content: &Content<'_>,
    recipients: &mut RecipientReader,
    log: &mut dyn SendLog,
    mailer: &Mailer,
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
    let mut attempted = 0u64;
    while let Some(row) = recipients.next_row()? {
        let recipient = match row {
            Row::Valid(recipient) => recipient,
            Row::Rejected(error) => {
                tracing::warn!("row rejected: {}", error.at(recipients.path()));
                report.rejected.push(error);
                continue;
            }
        };
        let previous = log.replay().get(&recipient.key).map(|e| e.status);
        if previous.is_some_and(Status::is_final) {
            report.already_done += 1;
            continue;
        }
        if *shutdown.borrow() {
            report.stopped = Some(Stopped::Interrupted);
            break;
        }
        if limits.max_messages.is_some_and(|max| attempted >= max) {
            report.stopped = Some(Stopped::MaxMessages);
            break;
        }
        if limits
            .max_duration
            .is_some_and(|max| started.elapsed() >= max)
        {
            report.stopped = Some(Stopped::MaxDuration);
            break;
        }
        if let Some(pace) = &mut pace {
            pace.tick().await;
        }

        let rendered = render(content.letter, &content.frame, &recipient);
        let message_id = content.composer.message_id(&recipient);
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
        let rcpt = recipient.email.to_string();
        log.append(Record::new(Event::Attempt, &rcpt, &message_id))?;
        attempted += 1;
        if previous == Some(Status::InDoubt) {
            report.resent_in_doubt += 1;
        }
        let event = match mailer.deliver(message).await {
            Delivery::Sent(reply) => {
                report.sent += 1;
                Event::Sent { reply }
            }
            Delivery::Deferred(reply) => {
                report.deferred += 1;
                Event::Deferred { reply }
            }
            Delivery::Failed(reply) => {
                report.failed += 1;
                Event::Failed { reply }
            }
            Delivery::Unreachable(error) => {
                // No outcome is recorded: the attempt stays in doubt and is resent next run.
                tracing::error!(server = %mailer.endpoint(), %error, "SMTP server unreachable; stopping");
                report.stopped = Some(Stopped::Unreachable(error));
                break;
            }
        };
        tracing::debug!(rcpt = %rcpt, ?event, "outcome");
        log.append(Record::new(event, &rcpt, &message_id))?;
    }
    Ok(report)
}
