//! What a report's `Action` and `Status` and a server's words mean for the mailbox: gone for
//! good (hard), or not now, not clear, or not about the mailbox (soft, counted).
//!
//! Whether a refusal names a dead mailbox is [`crate::refusal`]'s reading, the one `send` uses
//! for the refusals it meets itself, so that a bounce and a refusal at send time of the same
//! reply decide alike. This adds what a bounce knows besides a reply: `Action: delayed`, a
//! temporary class, a code written anywhere in a free-text notice (`… said: 550 5.1.1 …`), and
//! no code at all (a notice that only says "the recipient's mailbox does not exist").
//!
//! A final failure about the address, the mailbox or its route (`5.1.x`, `5.2.x`, `5.4.x`) is
//! hard too: a DSN is the reporting server's last word, after its own retries. Everything else
//! that failed is soft: a full mailbox, a refusal by policy (`5.7.x`, spam, block lists: about
//! the sender or the message, not the mailbox; marked `policy`), and a permanent failure that
//! says nothing of the mailbox (`5.3.x` the mail system, `5.5.x`, `5.6.x` content…). Soft
//! bounces are counted; only repeated ones stop the mail to a person.

use super::Kind;
use crate::refusal::{self, Meaning, StatusCode};

/// The verdict on one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    pub kind: Kind,
    pub policy: bool,
    pub status: Option<String>,
    pub reason: String,
}

/// Words of a failure that may pass, for notices without a code.
const TEMPORARY: &[&str] = &[
    "try again later",
    "temporar",
    "delayed",
    "will be retried",
    "still being retried",
    "will retry",
    "deferred",
    "greylist",
];

/// The verdict from a DSN's `Action` and `Status` (either may be missing, as in free-text
/// bounces) and the server's words. `None` when nothing in them says a delivery failed.
pub(super) fn judge(action: Option<&str>, status: Option<&str>, words: &str) -> Option<Verdict> {
    let action = action.map(|a| a.trim().to_ascii_lowercase());
    let status = status
        .and_then(|s| s.split_whitespace().next())
        .and_then(StatusCode::parse)
        .or_else(|| enhanced_code(words));
    let basic = basic_code_in(words);
    let shown = status.map(|s| s.to_string());
    let verdict = |kind, policy, reason: String| {
        Some(Verdict {
            kind,
            policy,
            status: shown.clone(),
            reason,
        })
    };
    if action.as_deref() == Some("delayed") {
        return verdict(
            Kind::Soft,
            false,
            "delayed: the server is still trying".into(),
        );
    }
    let class = status
        .map(|s| s.class)
        .or_else(|| basic.map(|code| (code / 100) as u8));
    let code = shown
        .clone()
        .or_else(|| basic.map(|b| b.to_string()))
        .unwrap_or_default();
    match class {
        Some(2) => None,
        Some(4) => {
            let policy = refusal::meaning_of(basic, status, words) == Meaning::Policy;
            verdict(Kind::Soft, policy, format!("temporary failure ({code})"))
        }
        Some(_) => match refusal::meaning_of(basic, status, words) {
            Meaning::DeadMailbox => verdict(
                Kind::Hard,
                false,
                format!("the mailbox does not exist ({code})"),
            ),
            Meaning::Full => verdict(Kind::Soft, false, "mailbox full".into()),
            Meaning::Policy => verdict(
                Kind::Soft,
                true,
                format!("refused by policy ({code}): counted as soft"),
            ),
            // A final failure about the address, the mailbox or the route to it (`5.1.x`,
            // `5.2.x`, `5.4.x`: no such domain, no route) is the reporting server's last word
            // after its own retries: hard, as the policy says of `5.x.x`. The others
            // (`5.3.x` the mail system, `5.5.x` the protocol, `5.6.x` the content) say nothing
            // of the mailbox.
            Meaning::Other
                if status.is_some_and(|s| s.class == 5 && matches!(s.subject, 1 | 2 | 4)) =>
            {
                verdict(
                    Kind::Hard,
                    false,
                    format!("a permanent failure of the address or its route ({code})"),
                )
            }
            Meaning::Other => verdict(
                Kind::Soft,
                false,
                format!(
                    "a permanent failure ({code}) that does not say the mailbox is dead: \
                     counted as soft"
                ),
            ),
        },
        // No code at all: the words, read as a permanent refusal's would be.
        None => match refusal::meaning_of(Some(550), None, words) {
            Meaning::DeadMailbox => verdict(Kind::Hard, false, "the mailbox does not exist".into()),
            Meaning::Full => verdict(Kind::Soft, false, "mailbox full".into()),
            Meaning::Policy => verdict(
                Kind::Soft,
                true,
                "refused by policy: counted as soft".into(),
            ),
            Meaning::Other if says_temporary(words) => {
                verdict(Kind::Soft, false, "temporary failure".into())
            }
            Meaning::Other if action.as_deref() == Some("failed") => verdict(
                Kind::Soft,
                false,
                "failed, with no reason that says the mailbox is dead: counted as soft".into(),
            ),
            Meaning::Other => None,
        },
    }
}

fn says_temporary(words: &str) -> bool {
    let words = words.to_lowercase();
    TEMPORARY.iter().any(|phrase| words.contains(phrase))
}

/// The first enhanced status code (`5.1.1`) anywhere in `text`: a class of 2, 4 or 5, then one
/// to three digits twice, not part of a longer dotted number (an IP address).
pub(super) fn enhanced_code(text: &str) -> Option<StatusCode> {
    let bytes = text.as_bytes();
    let digits_from = |mut i: usize| {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        (i - start, i)
    };
    for (at, &byte) in bytes.iter().enumerate() {
        let starts = matches!(byte, b'2' | b'4' | b'5')
            && (at == 0 || !(bytes[at - 1].is_ascii_digit() || bytes[at - 1] == b'.'))
            && bytes.get(at + 1) == Some(&b'.');
        if !starts {
            continue;
        }
        let (n1, end1) = digits_from(at + 2);
        if !(1..=3).contains(&n1) || bytes.get(end1) != Some(&b'.') {
            continue;
        }
        let (n2, end2) = digits_from(end1 + 1);
        let dotted_on =
            bytes.get(end2) == Some(&b'.') && bytes.get(end2 + 1).is_some_and(u8::is_ascii_digit);
        if (1..=3).contains(&n2) && !dotted_on {
            return StatusCode::parse(&text[at..end2]);
        }
    }
    None
}

/// The basic reply code (`550`) a notice quotes: at the start of its words, of a line, or after
/// `;` or `:` (`smtp; 550 …`, `… said: 550 …`).
fn basic_code_in(words: &str) -> Option<u16> {
    let starts =
        std::iter::once(0).chain(words.match_indices([';', ':', '\n']).map(|(at, _)| at + 1));
    starts
        .filter_map(|start| refusal::basic_code(&words[start..]))
        .find(|code| (400..600).contains(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(action: Option<&str>, status: Option<&str>, words: &str) -> Option<(Kind, bool)> {
        judge(action, status, words).map(|v| (v.kind, v.policy))
    }

    #[test]
    fn the_address_mailbox_or_route_gone_is_hard_and_everything_else_that_failed_is_soft() {
        use Kind::*;
        #[rustfmt::skip]
        let cases = [
            (Some("failed"), Some("5.1.1"), "550 5.1.1 User unknown", Some((Hard, false))),
            (Some("failed"), Some("5.2.1"), "mailbox disabled", Some((Hard, false))),
            (Some("failed"), Some("5.1.10"), "RESOLVER.ADR.RecipientNotFound", Some((Hard, false))),
            (Some("failed"), Some("5.0.0"), "550 user unknown", Some((Hard, false))),
            (Some("failed"), Some("5.5.0"), "550 Requested action not taken: mailbox unavailable", Some((Hard, false))),
            (Some("failed"), Some("5.2.2"), "552 mailbox full", Some((Soft, false))),
            (Some("failed"), Some("5.7.1"), "550 5.7.1 Message rejected as spam", Some((Soft, true))),
            (Some("failed"), Some("5.0.0"), "554 blocked using zen.spamhaus.org", Some((Soft, true))),
            (Some("failed"), Some("5.4.4"), "unable to route", Some((Hard, false))),
            (Some("failed"), Some("5.3.4"), "552 message too big for system", Some((Soft, false))),
            (Some("failed"), Some("5.6.0"), "554 content error", Some((Soft, false))),
            (Some("delayed"), Some("4.4.1"), "connection timed out", Some((Soft, false))),
            (Some("failed"), Some("4.4.7"), "expired", Some((Soft, false))),
            (Some("failed"), None, "", Some((Soft, false))),
            (Some("delivered"), Some("2.0.0"), "250 ok", None),
            (None, None, "Sorry, no mailbox here by that name. (#5.1.1)", Some((Hard, false))),
            (None, None, "host mx said: 550 5.1.1 <a@b.c>: unknown", Some((Hard, false))),
            (None, None, "the recipient's mailbox does not exist", Some((Hard, false))),
            (None, None, "552 sorry, mailbox full", Some((Soft, false))),
            (None, None, "the server will retry for 5 days", Some((Soft, false))),
            (None, None, "the weather is fine", None),
        ];
        for (action, status, words, expected) in cases {
            assert_eq!(
                kind(action, status, words),
                expected,
                "{action:?} {status:?} {words}"
            );
        }
    }

    #[test]
    fn enhanced_codes_are_found_but_not_inside_addresses_of_hosts() {
        let code = |text| enhanced_code(text).map(|c| c.to_string());
        assert_eq!(code("smtp; 550 5.1.1 <a@b.c>").as_deref(), Some("5.1.1"));
        assert_eq!(code("(#5.1.1)").as_deref(), Some("5.1.1"));
        assert_eq!(
            code("550-5.7.26 unauthenticated").as_deref(),
            Some("5.7.26")
        );
        assert_eq!(code("host 10.5.1.1 said no"), None);
        assert_eq!(
            code("host [192.0.2.5] said 5.4.1 x").as_deref(),
            Some("5.4.1")
        );
        assert_eq!(code("v2.3.4.5"), None);
        assert_eq!(basic_code_in("smtp; 550 no"), Some(550));
        assert_eq!(basic_code_in("remote host said: 452 later"), Some(452));
        assert_eq!(basic_code_in("5500 things"), None);
    }
}
