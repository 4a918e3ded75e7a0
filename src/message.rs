//! MIME assembly: headers, Message-ID and the `multipart/alternative` body of one message
//! (inside a `multipart/mixed` when files are attached).
//!
//! A [`Composer`] is made once per campaign (sender, id, and each letter's subject: one per
//! language with `[letters]`) and turns each person's [`Rendered`] bodies into a lettre
//! [`Message`], with the subject of the letter they are. lettre does the encoding: RFC 2047 for
//! non-ASCII names and subjects, quoted-printable or base64 for the bodies (the bodies through
//! `body`, which makes lettre's bytes faster). `header` keeps every header line within RFC 5322's
//! 998 octets where lettre's folding alone would not (a display name with a very long word; a
//! link too long for any line makes the message unbuildable, named, rather than refused by every
//! server).
//!
//! The Message-ID is a hash of (campaign id, address), so the same person always gets the same
//! id for the same campaign: a resend after a crash can be recognized downstream, and a test can
//! match what a server received to the person it was for.
//!
//! When the campaign has them, every message also carries the person's `List-Unsubscribe` and
//! `List-Unsubscribe-Post` headers ([`crate::unsubscribe`]), and is DKIM-signed last, over its
//! final headers and body ([`crate::dkim`]).
//!
//! The envelope (SMTP's `MAIL FROM` and `RCPT TO`) is made here too: its sender is `From`'s
//! address, or with a return path the person's own VERP address ([`crate::verp`]), so that a
//! bounce names whom it is about. No header says so: `Return-Path` is the receiving server's to
//! write, from the envelope.

use std::sync::Arc;
use std::time::SystemTime;

use lettre::Message;
use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::message::dkim::DkimConfig;
use lettre::message::header::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use crate::recipients::Recipient;
use crate::render::{FixedParts, Rendered};
use crate::unsubscribe::{ONE_CLICK, Unsubscribe};
use crate::verp::Verp;

mod attachment;
mod body;
mod header;
mod multipart;

pub use attachment::{Attachment, PersonalFiles, blocked_type, content_type, inside};

use multipart::{KnownParts, multipart_alternative};

/// The longest line a message may hold, CRLF excluded (RFC 5322, section 2.1.1).
pub const MAX_LINE: usize = 998;

/// A message that cannot be built for one person.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the message for {email}: {problem}")]
pub struct MessageError {
    pub email: String,
    pub problem: MessageProblem,
}

/// Why a message cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum MessageProblem {
    /// lettre refused (a header it could not encode).
    #[error(transparent)]
    Lettre(#[from] lettre::error::Error),
    /// The person's unsubscribe link cannot be folded (a URL must not be cut) and would make a
    /// header line longer than a server accepts.
    #[error(
        "its unsubscribe link is {link} characters long, and a mail header line holds at most \
         {MAX_LINE}: shorten `[unsubscribe] url` in the campaign"
    )]
    LinkTooLong { link: usize },
    /// The person's own attachment is missing, unreadable, or outside the campaign's folder.
    #[error("{0}")]
    Attachment(String),
}

/// Builds the messages of one campaign.
#[derive(Debug, Clone)]
pub struct Composer {
    campaign_id: String,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    /// Each letter's subject and fixed parts, by [`Rendered::letter`]; one without `[letters]`.
    letters: Arc<[LetterParts]>,
    /// From and Reply-To folded by us, where lettre's encoding would not fold them.
    folded_from: Option<HeaderValue>,
    folded_reply_to: Option<HeaderValue>,
    unsubscribe: Option<Arc<Unsubscribe>>,
    dkim: Option<Arc<DkimConfig>>,
    /// Makes each message's envelope sender; `None`: `From`'s address.
    verp: Option<Arc<Verp>>,
    /// Files attached to every message, each encoded once.
    attachments: Arc<[Attachment]>,
    /// Each person's own file, read when their message is composed.
    personal: Option<Arc<PersonalFiles>>,
}

impl Composer {
    pub fn new(campaign_id: &str, from: Mailbox, reply_to: Option<Mailbox>, subject: &str) -> Self {
        Composer {
            campaign_id: campaign_id.to_owned(),
            folded_from: header::mailbox("From", &from),
            folded_reply_to: reply_to
                .as_ref()
                .and_then(|m| header::mailbox("Reply-To", m)),
            from,
            reply_to,
            letters: Arc::new([LetterParts {
                subject: subject.to_owned(),
                known: Arc::default(),
                unsubscribe: None,
            }]),
            unsubscribe: None,
            dkim: None,
            verp: None,
            attachments: Arc::new([]),
            personal: None,
        }
    }

    /// Encodes the parts of the letter that read the same for everyone once, rather than once
    /// a message. The messages are the same bytes with or without.
    pub fn with_fixed_parts(mut self, parts: &FixedParts) -> Self {
        let mut letters = self.letters.to_vec();
        letters[0].known = Arc::new(KnownParts::new(parts));
        self.letters = letters.into();
        self
    }

    /// Adds the next of the campaign's letters (in a language of its own): the messages of a
    /// [`Rendered`] of it get its `subject`, and its own unsubscribe link when it has one (the
    /// link names the language, for the pages it leads to). `parts` as for
    /// [`Composer::with_fixed_parts`].
    pub fn with_letter(
        mut self,
        subject: &str,
        parts: &FixedParts,
        unsubscribe: Option<Arc<Unsubscribe>>,
    ) -> Self {
        let mut letters = self.letters.to_vec();
        letters.push(LetterParts {
            subject: subject.to_owned(),
            known: Arc::new(KnownParts::new(parts)),
            unsubscribe,
        });
        self.letters = letters.into();
        self
    }

    /// Attaches `attachments` (each encoded once, here) to every message, after the letter.
    pub fn with_attachments(mut self, attachments: Vec<Attachment>) -> Self {
        self.attachments = attachments.into();
        self
    }

    /// Attaches each person's own file (after the shared ones); a message whose file cannot be
    /// read is not built.
    pub fn with_personal_files(mut self, files: PersonalFiles) -> Self {
        self.personal = Some(Arc::new(files));
        self
    }

    /// Adds `List-Unsubscribe` (mailto and the person's HTTPS link) and
    /// `List-Unsubscribe-Post` to every message.
    /// (The links of the first letter, and of any added without links of its own.)
    pub fn with_unsubscribe(mut self, unsubscribe: Arc<Unsubscribe>) -> Self {
        self.unsubscribe = Some(unsubscribe);
        self
    }

    /// DKIM-signs every message.
    pub fn with_dkim(mut self, dkim: Arc<DkimConfig>) -> Self {
        self.dkim = Some(dkim);
        self
    }

    /// Sends each message from its recipient's own envelope sender (VERP) instead of `From`'s
    /// address. The headers are the same.
    pub fn with_verp(mut self, verp: Arc<Verp>) -> Self {
        self.verp = Some(verp);
        self
    }

    /// The envelope sender (`MAIL FROM`) of the message to `recipient`.
    pub fn envelope_sender(&self, recipient: &Recipient) -> lettre::Address {
        match &self.verp {
            Some(verp) => verp.envelope_sender_of(&recipient.key),
            None => self.from.email.clone(),
        }
    }

    /// The Message-ID `recipient` gets in this campaign, with its angle brackets.
    pub fn message_id(&self, recipient: &Recipient) -> String {
        message_id(
            &self.campaign_id,
            self.from.email.domain(),
            recipient.email.as_ref(),
        )
    }

    /// The message for `recipient`: text part first, HTML last (clients show the last part they
    /// can display), dated `date`.
    pub fn compose(
        &self,
        recipient: &Recipient,
        rendered: Rendered,
        date: SystemTime,
    ) -> Result<Message, MessageError> {
        let name = (!recipient.name.is_empty()).then(|| recipient.name.clone());
        let letter = self
            .letters
            .get(rendered.letter)
            .unwrap_or(&self.letters[0]);
        let failed = |problem: MessageProblem| MessageError {
            email: recipient.email.to_string(),
            problem,
        };
        // Given, or lettre would work it out by parsing back the From and To it was just given.
        let sender = self.envelope_sender(recipient);
        let envelope = Envelope::new(Some(sender), vec![recipient.email.clone()])
            .map_err(|e| failed(e.into()))?;
        let to = Mailbox::new(name, recipient.email.clone());
        let folded_to = header::mailbox("To", &to);
        let mut builder = Message::builder()
            .envelope(envelope)
            .from(self.from.clone())
            .to(to)
            .subject(letter.subject.clone())
            .date(date)
            .message_id(Some(self.message_id(recipient)));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        // In place of lettre's, where they stand.
        for folded in [&self.folded_from, &folded_to, &self.folded_reply_to]
            .into_iter()
            .flatten()
        {
            builder = builder.raw_header(folded.clone());
        }
        if let Some(unsubscribe) = letter.unsubscribe.as_ref().or(self.unsubscribe.as_ref()) {
            let links = unsubscribe.header(recipient.email.as_ref());
            if !header::fits("List-Unsubscribe", &links) {
                let link = unsubscribe.link(recipient.email.as_ref()).len();
                return Err(failed(MessageProblem::LinkTooLong { link }));
            }
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    links,
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    ONE_CLICK.to_owned(),
                ));
        }
        let mut message = match &self.personal {
            None => multipart_alternative(builder, rendered, &letter.known, &self.attachments),
            Some(files) => {
                let own = files
                    .read(recipient)
                    .map_err(|problem| failed(MessageProblem::Attachment(problem)))?;
                let mut all = self.attachments.to_vec();
                all.push(own);
                multipart_alternative(builder, rendered, &letter.known, &all)
            }
        }
        .map_err(|e| failed(e.into()))?;
        if let Some(dkim) = &self.dkim {
            // Last: the signature covers the headers and body exactly as they will be sent.
            message.sign(dkim);
        }
        Ok(message)
    }
}

/// What a composer holds of one of the campaign's letters.
#[derive(Debug, Clone)]
struct LetterParts {
    subject: String,
    /// What every text and HTML part of the letter holds, encoded once.
    known: Arc<KnownParts>,
    /// The letter's own links; `None`: the composer's.
    unsubscribe: Option<Arc<Unsubscribe>>,
}

/// `<campaign.hash@domain>`, where the hash covers the campaign id and the person (the address as
/// [`crate::address::normalize`] writes it).
pub fn message_id(campaign_id: &str, domain: &str, address: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(campaign_id.as_bytes());
    hasher.update([0]);
    hasher.update(crate::address::normalize(address).as_bytes());
    let digest = hasher.finalize();
    let hash = crate::address::hex(&digest[..12]);
    format!("<{campaign_id}.{hash}@{domain}>")
}

#[cfg(test)]
mod tests;
