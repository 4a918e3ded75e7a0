//! The SMTP client side: connections to a relay, one transaction at a time, every step bounded
//! by a timeout, and what each reply means for a message.
//!
//! missive drives lettre's connection step by step (greeting, EHLO, STARTTLS, AUTH, then MAIL,
//! RCPT, DATA, the message) rather than through its all-in-one transport, for three reasons. The
//! send log must make an `attempt` durable *before* DATA starts, so that a failure before that
//! point is known never to have delivered anything. lettre's async client bounds only the TCP
//! connect by its timeout: a server that stalls after the greeting would hang a run forever;
//! here every step has its own deadline. And lettre does not pipeline: when the server offers
//! PIPELINING (RFC 2920), MAIL, RCPT and DATA go out here in one write, and may follow the
//! previous message in the same write, so that a message costs one round trip instead of four,
//! which on a fast link is most of a message's time.

use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::ClientId;

use crate::error::{Classify, ErrorKind};

mod connection;
mod endpoint;
mod wire;

pub use connection::Connection;
use connection::step;
pub use endpoint::{Endpoint, EndpointError, Security, mask_credentials, mask_url};
use wire::offers;

/// The relay could not be set up (a host name TLS cannot use, for instance).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the SMTP connection to {endpoint}: {message}")]
pub struct TransportError {
    pub endpoint: String,
    pub message: String,
}

impl Classify for TransportError {
    fn kind(&self) -> ErrorKind {
        // Settings no relay could be set up with: the campaign's, or `--smtp`'s.
        ErrorKind::Invalid
    }
}

/// Why a step of a transaction did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The server answered no: its reply code (4xx or 5xx), its text, and what it answered.
    Refused {
        code: u16,
        reply: String,
        stage: Stage,
    },
    /// No usable answer (connection refused or lost, TLS failure, timeout, garbled reply). The
    /// connection cannot be used again.
    Broken(String),
    /// The server refused the login for good (5xx to AUTH): the server's reply.
    LoginRefused(String),
    /// The relay's certificate failed verification (an authority not trusted, another host's
    /// name, out of date): why, and what to do. Unlike a TLS failure on the way, no retry
    /// mends it.
    Untrusted(String),
}

impl Trouble {
    /// 421 means "closing the channel": about the server, not about this message.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Trouble::Broken(_)
                | Trouble::LoginRefused(_)
                | Trouble::Untrusted(_)
                | Trouble::Refused { code: 421, .. }
        )
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, Trouble::Refused { code, .. } if *code >= 500)
    }

    /// A refusal for good of the recipient itself: of `RCPT TO`, or of the message (whose only
    /// recipient it is). A refusal of `MAIL FROM` is about the sender, and says nothing of the
    /// recipient however it is worded.
    pub fn refuses_recipient(&self) -> bool {
        matches!(
            self,
            Trouble::Refused { code, stage: Stage::Rcpt | Stage::Message, .. } if *code >= 500
        )
    }

    /// The same trouble, a refusal now known to answer `stage`.
    pub(crate) fn at(self, stage: Stage) -> Trouble {
        match self {
            Trouble::Refused { code, reply, .. } => Trouble::Refused { code, reply, stage },
            other => other,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Trouble::Refused { reply, .. } => reply.clone(),
            Trouble::Broken(why) | Trouble::LoginRefused(why) | Trouble::Untrusted(why) => {
                why.clone()
            }
        }
    }
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// What a refusal answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Anything outside a message's transaction: the greeting, EHLO, STARTTLS, AUTH.
    Session,
    Mail,
    Rcpt,
    /// The `DATA` command.
    Data,
    /// The message itself, after `DATA`.
    Message,
}

/// Which of the campaign's relays one is: the send log and the messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayName {
    /// `[smtp]`: the relay a run uses while it answers.
    Primary,
    /// `[fallback]`: the relay used while the primary is down.
    Fallback,
}

impl RelayName {
    /// The name as the send log (`"via"`) and the messages spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayName::Primary => "primary",
            RelayName::Fallback => "fallback",
        }
    }

    /// The other relay of the two.
    pub fn other(self) -> RelayName {
        match self {
            RelayName::Primary => RelayName::Fallback,
            RelayName::Fallback => RelayName::Primary,
        }
    }
}

impl std::fmt::Display for RelayName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An SMTP server missive delivers through: where, how securely, with which login.
pub struct Relay {
    pub name: RelayName,
    endpoint: Endpoint,
    credentials: Option<Credentials>,
    tls: Option<TlsParameters>,
    timeout: Duration,
    hello: ClientId,
    /// The login, as far as this run knows: until one succeeds, connections log in one at a
    /// time, so that a wrong password is tried once a run, not once a connection.
    login: tokio::sync::Mutex<Login>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Login {
    Untried,
    Accepted,
    /// Refused for good: not tried again this run.
    Refused,
}

impl Relay {
    /// A relay at `endpoint`: TLS verified against the webpki roots (and the authorities in
    /// `extra_roots`, PEM, when given) unless the endpoint is a plain loopback one, logging in
    /// with `credentials` if given, `timeout` on every step.
    pub fn new(
        name: RelayName,
        endpoint: &Endpoint,
        credentials: Option<Credentials>,
        extra_roots: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Relay, TransportError> {
        let failed = |e: lettre::transport::smtp::Error| TransportError {
            endpoint: endpoint.to_string(),
            message: e.to_string(),
        };
        let tls = match endpoint.security {
            Security::Plain => None,
            Security::StartTls | Security::Tls => {
                let mut builder = TlsParameters::builder(endpoint.host.clone());
                if let Some(pem) = extra_roots {
                    builder =
                        builder.add_root_certificate(Certificate::from_pem(pem).map_err(failed)?);
                }
                Some(builder.build_rustls().map_err(failed)?)
            }
        };
        Ok(Relay {
            name,
            endpoint: endpoint.clone(),
            credentials,
            tls,
            timeout,
            hello: ClientId::default(),
            login: tokio::sync::Mutex::new(Login::Untried),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Waits for this relay's turn to connect. Until a login has succeeded, connections log in
    /// one at a time, so that a wrong password is tried once a run; a connection may then wait
    /// for another's login, up to a timeout, and what was known when it began waiting (that the
    /// run should go on, that this relay is the one to use) may have changed by its turn. A
    /// login refused earlier in the run is [`Trouble::LoginRefused`] at once.
    pub async fn turn(&self) -> Result<Turn<'_>, Trouble> {
        if self.credentials.is_none() {
            return Ok(Turn(None));
        }
        let login = self.login.lock().await;
        match *login {
            Login::Accepted => Ok(Turn(None)),
            Login::Refused => Err(Trouble::LoginRefused(
                "the login was refused earlier in this run".into(),
            )),
            Login::Untried => Ok(Turn(Some(login))),
        }
    }

    /// Connects, reads the greeting, says EHLO, upgrades to TLS and logs in as configured, in
    /// its [`turn`](Self::turn). A 4xx greeting (421 "busy") is [`Trouble::Refused`]; a
    /// certificate that cannot be trusted is [`Trouble::Untrusted`]; anything else that leaves
    /// no usable connection is [`Trouble::Broken`].
    pub async fn connect(&self, turn: Turn<'_>) -> Result<Connection, Trouble> {
        // Held through this connection's login while no login has succeeded yet.
        let Turn(mut first_login) = turn;
        let wrapper = match self.endpoint.security {
            Security::Tls => self.tls.clone(),
            _ => None,
        };
        let address = (self.endpoint.host.as_str(), self.endpoint.port);
        let mut inner = step(
            self.timeout,
            AsyncSmtpConnection::connect_tokio1(
                address,
                Some(self.timeout),
                &self.hello,
                wrapper,
                None,
            ),
        )
        .await?;
        if self.endpoint.security == Security::StartTls {
            let parameters = self
                .tls
                .clone()
                .expect("STARTTLS endpoints have parameters");
            step(self.timeout, inner.starttls(parameters, &self.hello)).await?;
        }
        // lettre reads the EHLO reply but keeps only the extensions it uses itself, and
        // PIPELINING is not one of them: ask again (before AUTH, since EHLO resets a session).
        let pipelining =
            match step(self.timeout, inner.command(Ehlo::new(self.hello.clone()))).await {
                Ok(ehlo) => offers(&ehlo, "PIPELINING"),
                // A server that will not hear EHLO twice still takes one command at a time.
                Err(Trouble::Refused { .. }) => false,
                Err(broken) => return Err(broken),
            };
        if let Some(credentials) = &self.credentials {
            if inner
                .server_info()
                .get_auth_mechanism(DEFAULT_MECHANISMS)
                .is_none()
            {
                if let Some(login) = &mut first_login {
                    **login = Login::Refused;
                }
                return Err(Trouble::LoginRefused(
                    "the server offers no login missive can use (AUTH PLAIN or LOGIN); \
                     is a username set for a relay that takes none?"
                        .into(),
                ));
            }
            match step(self.timeout, inner.auth(DEFAULT_MECHANISMS, credentials)).await {
                // A wrong login stays wrong: trying again would only lock the account.
                Err(Trouble::Refused { code, reply, .. }) if code >= 500 => {
                    if let Some(login) = &mut first_login {
                        **login = Login::Refused;
                    }
                    return Err(Trouble::LoginRefused(reply));
                }
                result => result?,
            };
            if let Some(login) = &mut first_login {
                **login = Login::Accepted;
            }
        }
        Ok(Connection::new(inner, self.timeout, pipelining))
    }
}

/// A connection's leave to log in to a relay: see [`Relay::turn`].
pub struct Turn<'a>(Option<tokio::sync::MutexGuard<'a, Login>>);
