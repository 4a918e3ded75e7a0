//! The SMTP client side: a pooled lettre transport built from an [`Endpoint`], and what a
//! server's answer means for a message ([`Delivery`]).
//!
//! lettre keeps up to `pool_size` connections open and reuses each for many messages; the send
//! engine runs that many deliveries at once. Every step (connect, greeting, each command, the end
//! of DATA) is bounded by the transport's timeout.

use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::campaign::{Endpoint, Security};

/// The transport could not be set up (a host name TLS cannot use, for instance).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the SMTP transport for {endpoint}: {message}")]
pub struct TransportError {
    pub endpoint: String,
    pub message: String,
}

/// An SMTP server to deliver to.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    endpoint: Endpoint,
}

/// What became of one message, decided by the server's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// 2xx: the server took it (its reply, with the queue id).
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
    /// A transport to `endpoint`: TLS verified against the webpki roots unless the endpoint is a
    /// plain loopback one, `credentials` if given, `timeout` on every step, and up to `pool_size`
    /// connections.
    pub fn new(
        endpoint: &Endpoint,
        credentials: Option<Credentials>,
        timeout: Duration,
        pool_size: u32,
    ) -> Result<Mailer, TransportError> {
        let builder = match endpoint.security {
            Security::Plain => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &endpoint.host,
            )),
            Security::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&endpoint.host)
            }
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&endpoint.host),
        }
        .map_err(|e| TransportError {
            endpoint: endpoint.to_string(),
            message: e.to_string(),
        })?;
        let mut builder = builder
            .port(endpoint.port)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(pool_size.max(1)));
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

    /// Hands `message` to the server and classifies the answer.
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
