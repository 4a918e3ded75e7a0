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

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use crate::error::{Classify, ErrorKind};

mod endpoint;
mod wire;

pub use endpoint::{Endpoint, EndpointError, Security, mask_credentials};
use wire::{Chained, DataBlock, Group, broken, certificate_problem, offers, reply_text, untrusted};

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
    /// The server answered no: its reply code (4xx or 5xx) and text.
    Refused { code: u16, reply: String },
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
                Err(Trouble::Refused { code, reply }) if code >= 500 => {
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
        Ok(Connection {
            inner,
            timeout: self.timeout,
            pipelining,
            ahead: None,
            out_of_step: false,
        })
    }
}

/// A connection's leave to log in to a relay: see [`Relay::turn`].
pub struct Turn<'a>(Option<tokio::sync::MutexGuard<'a, Login>>);

/// One open, greeted, logged-in connection, used for many messages in turn.
pub struct Connection {
    inner: AsyncSmtpConnection,
    timeout: Duration,
    /// The server takes MAIL, RCPT and DATA in one go.
    pipelining: bool,
    /// The envelope whose MAIL, RCPT and DATA went out after the last message, replies unread.
    ahead: Option<Envelope>,
    /// A reply went missing after a refusal: which reply comes next is no longer known, so the
    /// connection must not carry another message.
    out_of_step: bool,
}

impl Connection {
    /// Whether the server takes commands in groups: see [`finish_data`](Self::finish_data).
    pub fn pipelines(&self) -> bool {
        self.pipelining
    }

    /// MAIL FROM, RCPT TO and DATA: `Ok` when the server took the recipient and waits for the
    /// message. The first refusal is the answer (the server refuses a DATA without recipients
    /// too, but the reason is the recipient's). When the commands went out with the previous
    /// message, only their replies are read.
    pub async fn start(&mut self, envelope: &Envelope, message: &[u8]) -> Result<(), Trouble> {
        let replies = envelope.to().len() + 2;
        if let Some(sent) = self.ahead.take() {
            if sent != *envelope {
                return Err(Trouble::Broken(
                    "the commands sent ahead were for another message".into(),
                ));
            }
            return self.group_replies(replies, None).await;
        }
        let group = Group::new(self.mail(envelope, message)?, envelope);
        if !self.pipelining {
            step(self.timeout, self.inner.command(group.mail)).await?;
            for rcpt in group.rcpts {
                step(self.timeout, self.inner.command(rcpt)).await?;
            }
            step(self.timeout, self.inner.command(Data)).await?;
            return Ok(());
        }
        let first = step(self.timeout, self.inner.command(&group)).await;
        self.group_replies(replies, Some(first)).await
    }

    /// Reads the `replies` to a group of MAIL, RCPT and DATA (the first one already read when
    /// given), in order: every one must be read for the connection to carry the next message.
    async fn group_replies(
        &mut self,
        replies: usize,
        mut first: Option<Result<Response, Trouble>>,
    ) -> Result<(), Trouble> {
        let mut refusal = None;
        let mut data_accepted = false;
        for reply in 0..replies {
            let answer = match first.take() {
                Some(answer) => answer,
                None => step(self.timeout, self.inner.read_response()).await,
            };
            match answer {
                Ok(_) => data_accepted = reply == replies - 1,
                // A hang-up or a timeout after a refusal: the refusal is still the answer, but
                // a late reply may still come, so the connection is done.
                Err(broken @ Trouble::Broken(_)) => {
                    self.out_of_step = true;
                    return Err(refusal.unwrap_or(broken));
                }
                Err(refused) => {
                    refusal.get_or_insert(refused);
                }
            }
        }
        match refusal {
            None => Ok(()),
            Some(refused) => {
                if data_accepted {
                    // A server that says 354 with no recipient waits for a message: an empty
                    // one ends DATA (RFC 2920, 3.1), and there is no one to deliver it to.
                    let ended = step(self.timeout, self.inner.message(b"")).await;
                    self.out_of_step |= matches!(ended, Err(Trouble::Broken(_)));
                }
                Err(refused)
            }
        }
    }

    /// MAIL FROM with the parameters the envelope and the message need, or a refusal of our own
    /// when the server cannot take them.
    fn mail(&self, envelope: &Envelope, message: &[u8]) -> Result<Mail, Trouble> {
        let mut parameters = Vec::new();
        let info = self.inner.server_info();
        let non_ascii = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err(Trouble::Refused {
                    code: 553,
                    reply: "the address is not ASCII and the server lacks SMTPUTF8".into(),
                });
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            if !info.supports_feature(Extension::EightBitMime) {
                return Err(Trouble::Refused {
                    code: 554,
                    reply: "the message is 8-bit and the server lacks 8BITMIME".into(),
                });
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        Ok(Mail::new(envelope.from().cloned(), parameters))
    }

    /// The message itself, and the server's final word on it (its reply, with the queue id).
    ///
    /// With `then`, the next message's envelope, and a server that pipelines, that message's
    /// MAIL, RCPT and DATA go out in the same write (RFC 2920 lets message content open a
    /// group): its [`start`](Self::start) then only reads their replies, and must come next on
    /// this connection, or the connection be dropped.
    pub async fn finish_data(
        &mut self,
        message: &[u8],
        then: Option<(&Envelope, &[u8])>,
    ) -> Result<String, Trouble> {
        let Some(block) = DataBlock::new(message) else {
            return Ok(reply_text(
                &step(self.timeout, self.inner.message(message)).await?,
            ));
        };
        let next = match then {
            Some((envelope, next)) if self.pipelining => self
                .mail(envelope, next)
                .ok()
                .map(|mail| (envelope, Group::new(mail, envelope))),
            _ => None,
        };
        // One write: see `DataBlock`.
        let response = match next {
            Some((envelope, group)) => {
                self.ahead = Some(envelope.clone());
                step(self.timeout, self.inner.command(Chained(block, group))).await?
            }
            None => step(self.timeout, self.inner.command(block)).await?,
        };
        Ok(reply_text(&response))
    }

    /// RSET after a refused recipient, so the connection can carry the next message. False
    /// when the connection is no longer usable.
    pub async fn reset(&mut self) -> bool {
        !self.out_of_step && step(self.timeout, self.inner.command(Rset)).await.is_ok()
    }

    /// Says goodbye, without waiting long for the answer.
    pub async fn quit(mut self) {
        if self.ahead.is_some() {
            // The server may wait for a message after DATA: a QUIT would be taken for its first
            // line. Hanging up drops the transaction, and nothing of it was sent.
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.quit()).await;
    }
}

/// Runs one protocol step under `timeout`, and classifies its failure.
async fn step<T>(
    timeout: Duration,
    future: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, Trouble> {
    match tokio::time::timeout(timeout, future).await {
        Err(_) => Err(Trouble::Broken(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        ))),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(match error.status() {
            Some(code) => {
                // The reply as the server wrote it ("451 4.3.0 Try later"), not lettre's wording.
                let text = std::error::Error::source(&error)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                Trouble::Refused {
                    code: code.into(),
                    reply: format!("{code} {text}").trim_end().to_owned(),
                }
            }
            None => match certificate_problem(&error) {
                Some(problem) => Trouble::Untrusted(untrusted(&error.to_string(), problem)),
                None => Trouble::Broken(broken(&error.to_string())),
            },
        }),
    }
}
