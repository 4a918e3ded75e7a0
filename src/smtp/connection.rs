//! One open connection to a relay, carrying messages one after another: MAIL, RCPT and DATA
//! (grouped in one write when the server pipelines), the message, RSET after a refusal, QUIT.
//!
//! It keeps track of which reply comes next: a connection that lost count (a reply missing after
//! a refusal) or that sent the next message's commands ahead must not be used for anything else.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rset};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use super::wire::{Chained, DataBlock, Group, broken, certificate_problem, reply_text, untrusted};
use super::{Stage, Trouble};

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
    /// A connection that has just been greeted (and logged in): nothing sent ahead yet.
    pub(super) fn new(inner: AsyncSmtpConnection, timeout: Duration, pipelining: bool) -> Self {
        Connection {
            inner,
            timeout,
            pipelining,
            ahead: None,
            out_of_step: false,
        }
    }

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
            let at = |stage| move |trouble: Trouble| trouble.at(stage);
            step(self.timeout, self.inner.command(group.mail))
                .await
                .map_err(at(Stage::Mail))?;
            for rcpt in group.rcpts {
                step(self.timeout, self.inner.command(rcpt))
                    .await
                    .map_err(at(Stage::Rcpt))?;
            }
            step(self.timeout, self.inner.command(Data))
                .await
                .map_err(at(Stage::Data))?;
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
                    // MAIL first, DATA last, the recipients between.
                    let stage = match reply {
                        0 => Stage::Mail,
                        last if last == replies - 1 => Stage::Data,
                        _ => Stage::Rcpt,
                    };
                    refusal.get_or_insert(refused.at(stage));
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
                    stage: Stage::Mail,
                });
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            if !info.supports_feature(Extension::EightBitMime) {
                return Err(Trouble::Refused {
                    code: 554,
                    reply: "the message is 8-bit and the server lacks 8BITMIME".into(),
                    stage: Stage::Mail,
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
        let refused = |trouble: Trouble| trouble.at(Stage::Message);
        let Some(block) = DataBlock::new(message) else {
            let response = step(self.timeout, self.inner.message(message)).await;
            return Ok(reply_text(&response.map_err(refused)?));
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
                step(self.timeout, self.inner.command(Chained(block, group))).await
            }
            None => step(self.timeout, self.inner.command(block)).await,
        };
        let response = response.map_err(refused)?;
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
pub(super) async fn step<T>(
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
                    // The caller knows what was answered, and says so with `Trouble::at`.
                    stage: Stage::Session,
                }
            }
            None => match certificate_problem(&error) {
                Some(problem) => Trouble::Untrusted(untrusted(&error.to_string(), problem)),
                None => Trouble::Broken(broken(&error.to_string())),
            },
        }),
    }
}
