//! Bounces and complaints: what a message that came back to the organization says, as plain data.
//!
//! [`read`] takes the bytes of one message and returns a [`Reading`]: whether it is a bounce
//! (an RFC 3464 delivery report, or one of the older free-text formats MTAs still send: qmail,
//! Exim, old Exchange, Postfix without DSN), a complaint (an RFC 5965 feedback report from a
//! mailbox provider's feedback loop), not a bounce at all (an out-of-office reply, a person's
//! answer), or something it cannot tell; with, for each recipient it reports on, the verdict
//! ([`Kind::Hard`] or [`Kind::Soft`]), the status code and the server's words. It also keeps the
//! clues that say whom the message is about: the addresses the bounce was sent to (the VERP
//! tag), and the returned message's `Message-ID` and `To`. [`resolve`] turns those clues into
//! addresses, given what the edge found in the campaign's list.
//!
//! Nothing here reads a file, a clock or the environment: bytes in, a decision out. The edge
//! (`missive bounces`) reads folders, keeps the bounce log and writes the suppression lists.
//! A message is never judged a bounce on its words alone: free-text phrases are read only in
//! messages that look like bounces (a mailer-daemon sender, a bounce subject), so that a person
//! quoting "could not be delivered" in a reply is left alone.

use mail_parser::{Message, MessageParser, MimeHeaders};

mod report;
mod resolve;
mod status;
mod text;

pub use resolve::{Decision, Directory, FoundBy, Tag, Wanted, resolve, strongest};

/// What a message is, as `missive bounces` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The mailbox does not exist or is disabled (as [`crate::refusal`] reads a refusal):
    /// never mail it again.
    Hard,
    /// Anything else that failed: temporary (delayed, mailbox full), a refusal by policy, or a
    /// permanent failure that does not say the mailbox is dead. Counted.
    Soft,
    /// The person reported the message as spam.
    Complaint,
    /// An auto-reply, a person's reply, a success notice: nothing to act on.
    NotABounce,
    /// Looks like a bounce, but what it says, or whom it is about, cannot be told.
    Unknown,
}

impl Kind {
    /// The kind as `--json` and the bounce log write it (serde's names), for the corpus table.
    #[cfg(test)]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Hard => "hard",
            Kind::Soft => "soft",
            Kind::Complaint => "complaint",
            Kind::NotABounce => "not-a-bounce",
            Kind::Unknown => "unknown",
        }
    }
}

/// What a bounce or a complaint says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// [`Kind::Hard`], [`Kind::Soft`], [`Kind::Complaint`], or [`Kind::Unknown`] when the
    /// report says nothing that can be judged.
    pub kind: Kind,
    /// A refusal by policy (5.7.x, spam, blocked): never a dead mailbox, never counted.
    pub policy: bool,
    /// The enhanced status code (`5.1.1`), from the report or found in the server's words.
    pub status: Option<String>,
    /// The DSN's `Action` (`failed`, `delayed`), or the ARF `Feedback-Type`.
    pub action: Option<String>,
    /// What the remote server said, on one line.
    pub diagnostic: Option<String>,
    /// Why this verdict, for a person reading the bounce log.
    pub reason: String,
    /// The addresses the report names (`Original-Recipient`, `Final-Recipient`,
    /// `X-Failed-Recipients`, `Original-Rcpt-To`, the address of a free-text bounce), in
    /// that order of trust.
    pub addresses: Vec<String>,
}

/// What one message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A bounce or a complaint, with one report a recipient.
    Reports(Vec<Report>),
    /// Nothing to act on, and why.
    NotABounce(String),
    /// Cannot be understood, and why: reported, left alone.
    Unknown(String),
}

/// The clues to whom a message is about, besides its reports' own addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clues {
    /// Where the bounce was delivered (`Delivered-To`, `X-Original-To`, `Envelope-To`, `To`),
    /// then the returned message's `Return-Path` and a complaint's `Original-Mail-From`: with
    /// VERP, one of them is the envelope sender made for the person.
    pub envelope: Vec<String>,
    /// The returned message's `Message-ID`, without angle brackets.
    pub returned_message_id: Option<String>,
    /// The returned message's `To` addresses.
    pub returned_to: Vec<String>,
}

/// One message read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// The message's own `Message-ID`, with angle brackets.
    pub message_id: Option<String>,
    /// Its `Date`, in seconds since the Unix epoch.
    pub date: Option<i64>,
    pub outcome: Outcome,
    pub clues: Clues,
}

/// Reads one message; never fails (a message it cannot parse is [`Outcome::Unknown`]).
pub fn read(raw: &[u8]) -> Reading {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Reading {
            message_id: None,
            date: None,
            outcome: Outcome::Unknown("not a mail message (no header could be read)".into()),
            clues: Clues::default(),
        };
    };
    let mut clues = Clues::default();
    for name in [
        "Delivered-To",
        "X-Original-To",
        "Envelope-To",
        "X-Envelope-To",
        "To",
    ] {
        clues.envelope.extend(header_addresses(&message, name));
    }
    let outcome = judge(&message, &mut clues);
    let reading = Reading {
        message_id: message.message_id().map(|id| format!("<{id}>")),
        date: message.date().map(|date| date.to_timestamp()),
        outcome,
        clues,
    };
    drop_flat(message);
    reading
}

/// Drops a parsed message one nested message at a time. mail-parser reads `message/rfc822`
/// parts inside each other without a limit and without recursion, but dropping the result
/// recurses once a level: a bounce of a few megabytes nesting tens of thousands of them (anyone
/// may mail the bounce address) would overflow the stack and abort every run over that folder.
fn drop_flat(message: Message<'_>) {
    let mut messages = vec![message];
    while let Some(mut message) = messages.pop() {
        for part in &mut message.parts {
            if let mail_parser::PartType::Message(_) = part.body {
                let empty = mail_parser::PartType::Text("".into());
                if let mail_parser::PartType::Message(nested) =
                    std::mem::replace(&mut part.body, empty)
                {
                    messages.push(nested);
                }
            }
        }
    }
}

/// The key that makes a second read of the same message change nothing: its `Message-ID`, or
/// a hash of its bytes when it has none.
pub fn bounce_id(reading: &Reading, raw: &[u8]) -> String {
    match &reading.message_id {
        Some(id) => id.clone(),
        None => {
            use sha2::{Digest, Sha256};
            format!("sha256:{}", crate::address::hex(&Sha256::digest(raw)[..16]))
        }
    }
}

fn judge(message: &Message<'_>, clues: &mut Clues) -> Outcome {
    let mut delivery_status = None;
    let mut feedback = None;
    let mut returned = None;
    for part in &message.parts {
        let Some(content_type) = part.content_type() else {
            continue;
        };
        let ctype = content_type.ctype().to_ascii_lowercase();
        let subtype = content_type.subtype().unwrap_or("").to_ascii_lowercase();
        match (ctype.as_str(), subtype.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") => {
                delivery_status.get_or_insert_with(|| lossy(part.contents()));
            }
            ("message", "feedback-report") => {
                feedback.get_or_insert_with(|| lossy(part.contents()));
            }
            ("message", "rfc822" | "global") if returned.is_none() => {
                if let Some(nested) = part.message() {
                    returned = Some(Returned::of(nested));
                }
            }
            ("text" | "message", "rfc822-headers") if returned.is_none() => {
                returned = MessageParser::default()
                    .parse_headers(part.contents())
                    .map(|headers| Returned::of(&headers));
            }
            _ => {}
        }
    }
    if let Some(text) = feedback {
        returned.unwrap_or_default().into_clues(clues);
        return report::feedback(&text, clues);
    }
    if let Some(text) = delivery_status {
        let outcome = report::delivery_status(&text, clues);
        returned.unwrap_or_default().into_clues(clues);
        return outcome;
    }
    let looks = text::Looks::of(message);
    if !looks.like_bounce() {
        return Outcome::NotABounce(looks.why_not());
    }
    let body = text::body(message);
    let (notice, copy) = text::split_at_copy(&body);
    let returned = returned.or_else(|| {
        copy.and_then(|copy| MessageParser::default().parse_headers(copy.as_bytes()))
            .map(|headers| Returned::of(&headers))
    });
    returned.unwrap_or_default().into_clues(clues);
    text::free_text(notice, header_addresses(message, "X-Failed-Recipients"))
}

/// What a returned message (attached whole, as headers, or quoted inline) says.
#[derive(Debug, Default)]
struct Returned {
    message_id: Option<String>,
    to: Vec<String>,
    return_path: Vec<String>,
}

impl Returned {
    fn of(message: &Message<'_>) -> Returned {
        Returned {
            message_id: message.message_id().map(str::to_owned),
            to: header_addresses(message, "To"),
            return_path: header_addresses(message, "Return-Path"),
        }
    }

    fn into_clues(self, clues: &mut Clues) {
        clues.envelope.extend(self.return_path);
        if self.message_id.is_some() {
            clues.returned_message_id = self.message_id;
        }
        clues.returned_to.extend(self.to);
    }
}

/// The addresses in every `name` header of `message`, however the parser took the header.
fn header_addresses(message: &Message<'_>, name: &str) -> Vec<String> {
    use mail_parser::HeaderValue;
    let mut found = Vec::new();
    for value in message.header_values(name) {
        match value {
            HeaderValue::Address(list) => found.extend(
                list.iter()
                    .filter_map(|addr| addr.address())
                    .filter_map(plain_address),
            ),
            HeaderValue::Text(text) => found.extend(text.split(',').filter_map(plain_address)),
            HeaderValue::TextList(list) => {
                found.extend(list.iter().filter_map(|t| plain_address(t)))
            }
            _ => {}
        }
    }
    found
}

/// `text` as one address when it looks like one: brackets, an `rfc822;` type and spaces gone.
fn plain_address(text: &str) -> Option<String> {
    let mut text = text.trim();
    if let Some((kind, rest)) = text.split_once(';')
        && !kind.contains('@')
    {
        text = rest.trim();
    }
    let text = text
        .trim_start_matches('<')
        .trim_end_matches(['>', ':', '.', ','])
        .trim();
    let (local, domain) = text.rsplit_once('@')?;
    let fine = !local.is_empty()
        && domain.contains('.')
        && !text.contains(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '(' | ')' | ','));
    fine.then(|| text.to_owned())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests;
