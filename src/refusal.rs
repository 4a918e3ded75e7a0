//! What a mail server's refusal says about the address it refused: a mailbox that does not
//! exist (never to be mailed again), a mailbox full for now, a refusal of the mail rather than
//! of the address (policy, content, reputation), or nothing clear.
//!
//! `send` reads the replies servers give to `RCPT TO` and to the message, and puts the
//! addresses of dead mailboxes in the campaign's `bounced` list; `missive bounces` reads the
//! `Status` and `Diagnostic-Code` of a bounce report the same way. One reading for both, here,
//! as a pure function of the reply: the basic code (`550`), the enhanced status code (RFC 3463,
//! `5.1.1`, when the reply has one) and the text.
//!
//! The reading is cautious, for the two mistakes are not alike: mailing a dead address once more
//! costs a refusal, and the next one is recorded too; suppressing a live one silences a person
//! for good. So only refusals that name the address as undeliverable count as dead:
//! - by enhanced code: `5.1.1` (no such mailbox), `5.1.2` (no such domain), `5.1.3` (not an
//!   address), `5.1.6` (mailbox moved, no forwarding), `5.1.10` (the domain takes no mail: a
//!   null MX), `5.2.1` (mailbox disabled);
//! - by words, when the code is a vague one (`5.0.0`, `5.1.0`, `5.2.0`, `5.5.0`) or the reply
//!   has none (then only with `550`, `551`, `553` or `554`): "user unknown", "no such user",
//!   "does not exist", "mailbox unavailable" and the like (see `DEAD_WORDS`), unless the text
//!   also speaks of policy, spam, blocking or the sender (see `NOT_ABOUT_THE_ADDRESS`).
//!
//! A refusal that says it is of the sender ("Sender address rejected", see `SENDER_REFUSED`)
//! is never a dead mailbox, whatever its code: Postfix answers it at `RCPT TO`, with `5.1.1`
//! when its probe of the return path failed.
//!
//! `5.7.x` is always a refusal of the mail (policy, authentication, reputation, content), whatever
//! its words; so is every other code (`5.4.x` routing, `5.3.x` system, `5.5.x` protocol but
//! `5.5.0`, `5.6.x` content). A temporary refusal (`4xx`) is never a dead mailbox.
//!
//! A full mailbox (`5.2.2`, `552` "mailbox full", "over quota") is [`Meaning::Full`]: not dead.
//! A full mailbox is often an abandoned one, but it may also be emptied tomorrow; one refusal
//! does not tell, so `send` leaves it `failed` in its log and suppresses no one, and `missive
//! bounces` counts it as a soft bounce.
//!
//! `5.5.0` "Requested action not taken: mailbox unavailable" is dead: it is what Outlook.com and
//! Hotmail say of an address that does not exist (their policy refusals carry `5.7.x`), and
//! RFC 5321's own text for a `550` with no other reason.

use std::fmt;

/// What a refusal says about the address refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// The mailbox does not exist or takes no mail, for good: suppress the address.
    DeadMailbox,
    /// The mailbox is full (or over quota): a soft bounce, not a dead mailbox.
    Full,
    /// A refusal of the mail rather than of the address: policy, authentication, reputation,
    /// spam, content.
    Policy,
    /// Temporary, about the transaction, or not clear: nothing to say about the address.
    Other,
}

/// An enhanced status code (RFC 3463): `class.subject.detail`, such as `5.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusCode {
    /// 2 success, 4 temporary, 5 permanent.
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl StatusCode {
    /// `5.1.1` as written (digits only, each part at most three); `None` for anything else.
    pub fn parse(text: &str) -> Option<StatusCode> {
        let mut parts = text.split('.');
        let number = |part: Option<&str>| -> Option<u16> {
            let part = part?;
            if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let class = number(parts.next())?;
        let subject = number(parts.next())?;
        let detail = number(parts.next())?;
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(StatusCode {
            class: class as u8,
            subject,
            detail,
        })
    }

    /// The enhanced code a server's reply carries: first after the basic code (`550 5.1.1 …`,
    /// `550-5.1.1 …`, or the text alone, `5.1.1 …`), else where qmail writes it, at the end in
    /// parentheses (`… (#5.1.1)`).
    pub fn in_reply(reply: &str) -> Option<StatusCode> {
        let mut words = reply.split_whitespace();
        let first = words.next()?;
        let after_basic = match basic_code(reply) {
            // `550-5.1.1` on a continuation line: the enhanced code follows the dash.
            Some(_) if first.len() > 4 && first.as_bytes()[3] == b'-' => Some(&first[4..]),
            Some(_) => words.next(),
            None => Some(first),
        };
        if let Some(code) = after_basic.and_then(StatusCode::parse) {
            return Some(code);
        }
        reply.match_indices('#').find_map(|(at, _)| {
            let rest = &reply[at + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            StatusCode::parse(&rest[..end])
        })
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// The basic reply code a reply opens with (`550` of `550 5.1.1 …` or `550-…`), if any.
pub fn basic_code(reply: &str) -> Option<u16> {
    let reply = reply.trim_start();
    let digits = reply.get(..3)?;
    let follows = reply.as_bytes().get(3);
    if !matches!(follows, None | Some(b' ' | b'-' | b'\t'))
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok().filter(|code| (200..600).contains(code))
}

/// Enhanced codes that name the address as undeliverable, for good.
const DEAD_CODES: [(u16, u16); 6] = [(1, 1), (1, 2), (1, 3), (1, 6), (1, 10), (2, 1)];

/// Enhanced codes too vague to say by themselves: the words decide.
const VAGUE_CODES: [(u16, u16); 4] = [(0, 0), (1, 0), (2, 0), (5, 0)];

/// Words of a refusal (lower case) that say the mailbox does not exist or takes no mail.
const DEAD_WORDS: [&str; 24] = [
    "user unknown",
    "unknown user",
    "no such user",
    "no such mailbox",
    "no such recipient",
    "no such account",
    "unknown recipient",
    "recipient unknown",
    "unknown mailbox",
    "mailbox unknown",
    "mailbox not found",
    "mailbox unavailable",
    "does not exist",
    "doesn't exist",
    "invalid recipient",
    "invalid mailbox",
    "no mailbox here by that name",
    "unrouteable address",
    "user not found",
    "address not found",
    "mailbox is disabled",
    "account is disabled",
    "account has been disabled",
    "user doesn't have",
];

/// Words (lower case) that make a refusal about the mail, the sender or the sending server,
/// whatever else it says: "mailbox unavailable" may be a policy's words too.
const NOT_ABOUT_THE_ADDRESS: [&str; 14] = [
    "spam",
    "block",
    "blacklist",
    "denylist",
    "policy",
    "reputation",
    "sender",
    "relay",
    "content",
    "virus",
    "dmarc",
    "authenticat",
    "rate limit",
    "too many",
];

/// Words (lower case) of a refusal of the envelope sender, wherever it is answered: Postfix
/// checks the sender at `RCPT TO` by default and, when it verifies it, gives the code its probe
/// got (`550 5.1.1 <bounces+…>: Sender address rejected: undeliverable address`). About the
/// return path, never the recipient, whatever the code.
const SENDER_REFUSED: [&str; 4] = [
    "sender address rejected",
    "sender rejected",
    "sender verify failed",
    "sender verification failed",
];

/// Words (lower case) of a full mailbox.
const FULL_WORDS: [&str; 6] = [
    "mailbox full",
    "mailbox is full",
    "over quota",
    "quota exceeded",
    "exceeded storage",
    "insufficient storage",
];

/// What the refusal `reply` says about the address (`550 5.1.1 <x>: user unknown`, as a server
/// wrote it, continuation lines joined). See the module's doc for the rules.
pub fn meaning(reply: &str) -> Meaning {
    meaning_of(basic_code(reply), StatusCode::in_reply(reply), reply)
}

/// What a refusal says about the address, from its parts: the basic `code` (none in a bounce
/// report that gives only a `Status`), the enhanced `status` and the `text`.
pub fn meaning_of(code: Option<u16>, status: Option<StatusCode>, text: &str) -> Meaning {
    let text = text.to_lowercase();
    let says = |words: &[&str]| words.iter().any(|w| text.contains(w));
    // The basic code says whether it is for good; without one, the enhanced class does.
    let permanent = match (code, status) {
        (Some(code), _) => (500..600).contains(&code),
        (None, Some(status)) => status.class == 5,
        (None, None) => false,
    };
    let full = match status {
        Some(status) => (status.subject, status.detail) == (2, 2),
        None => says(&FULL_WORDS),
    };
    if full {
        return Meaning::Full;
    }
    if !permanent {
        return Meaning::Other;
    }
    if says(&SENDER_REFUSED) {
        return Meaning::Policy;
    }
    match status.map(|s| (s.subject, s.detail)) {
        Some((7, _)) => Meaning::Policy,
        Some(code) if DEAD_CODES.contains(&code) => Meaning::DeadMailbox,
        Some(code) if !VAGUE_CODES.contains(&code) => Meaning::Other,
        // A vague enhanced code, or none: the words decide; without an enhanced code, only
        // with the basic codes of an address refused.
        Some(_) | None => {
            let basic_ok = status.is_some() || matches!(code, Some(550 | 551 | 553 | 554));
            if says(&NOT_ABOUT_THE_ADDRESS) {
                Meaning::Policy
            } else if basic_ok && says(&DEAD_WORDS) {
                Meaning::DeadMailbox
            } else {
                Meaning::Other
            }
        }
    }
}

#[cfg(test)]
mod tests;
