//! What a status code, an action and a server's words mean for the mailbox: gone for good
//! (hard), there but not now (soft), or refusing us by policy (soft, and marked).
//!
//! The enhanced status code (RFC 3463) decides when there is one; the words decide only when
//! the code does not (a `5.0.0` with "user unknown"), or when there is none (free-text bounces).
//! Policy refusals (`5.7.x`, spam, block lists) say something about the sender or the message,
//! not that the mailbox is dead: they are soft, so only repeated ones stop mail to a person.

use super::Kind;

/// The verdict on one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verdict {
    pub kind: Kind,
    pub policy: bool,
    pub status: Option<String>,
    pub reason: String,
}

/// Words of a mailbox that does not exist (or no longer does, or is disabled).
const GONE: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "no such mailbox",
    "no such recipient",
    "no mailbox here",
    "mailbox unavailable",
    "mailbox not found",
    "mailbox disabled",
    "account disabled",
    "account has been disabled",
    "does not exist",
    "doesn't exist",
    "unknown recipient",
    "recipient not found",
    "recipientnotfound",
    "user not found",
    "invalid recipient",
    "invalid mailbox",
    "address not found",
    "couldn't be found",
    "could not be found",
    "unrouteable address",
    "no longer available",
    "utilisateur inconnu",
    "adresse inconnue",
    "n'existe pas",
];

/// Words of a full mailbox.
const FULL: &[&str] = &[
    "mailbox full",
    "mailbox is full",
    "over quota",
    "quota exceeded",
    "exceeded storage",
    "insufficient storage",
    "mailbox size limit",
    "boîte pleine",
    "boite pleine",
];

/// Words of a refusal by policy: the sender's reputation, or the message taken for spam.
const POLICY: &[&str] = &[
    "spam",
    "blocked",
    "blacklist",
    "blocklist",
    "block list",
    "black list",
    "policy",
    "reputation",
    "spamhaus",
    "unsolicited",
    "access denied",
    "not authorized",
];

/// Words of a failure that may pass.
const TEMPORARY: &[&str] = &[
    "try again later",
    "temporar",
    "delayed",
    "will be retried",
    "still being retried",
    "will retry",
    "deferred",
    "greylist",
    "too many connections",
];

fn says(words: &str, list: &[&str]) -> bool {
    list.iter().any(|phrase| words.contains(phrase))
}

/// The verdict from a DSN's `Action` and `Status` (either may be missing, as in free-text
/// bounces) and the server's words. `None` when nothing in them says what happened.
pub(super) fn judge(action: Option<&str>, status: Option<&str>, words: &str) -> Option<Verdict> {
    let words = words.to_lowercase();
    let action = action.map(|a| a.trim().to_ascii_lowercase());
    let status = status
        .and_then(|s| enhanced_code(s).or_else(|| s.split_whitespace().next().map(str::to_owned)))
        .or_else(|| enhanced_code(&words));
    let verdict = |kind, policy, reason: String| {
        Some(Verdict {
            kind,
            policy,
            status: status.clone(),
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
    let code = status.as_deref().or_else(|| basic_class(&words));
    let mut digits = code.unwrap_or("").split('.');
    let class = digits.next().unwrap_or("");
    let subject = digits.next().unwrap_or("");
    let detail = digits.next().unwrap_or("");
    let gone = says(&words, GONE);
    match class {
        "4" => verdict(
            Kind::Soft,
            says(&words, POLICY) && !gone,
            format!("temporary failure ({})", code.unwrap_or("4xx")),
        ),
        "5" if subject == "7" => verdict(
            Kind::Soft,
            true,
            format!(
                "refused by policy ({}): counted as soft",
                code.unwrap_or("5.7")
            ),
        ),
        "5" if (subject, detail) == ("2", "2") || says(&words, FULL) => {
            verdict(Kind::Soft, false, "mailbox full".into())
        }
        "5" if matches!(subject, "3" | "6") => verdict(
            Kind::Soft,
            false,
            format!(
                "the message was refused, not the mailbox ({})",
                code.unwrap_or("")
            ),
        ),
        "5" if subject != "1" && !gone && says(&words, POLICY) => verdict(
            Kind::Soft,
            true,
            format!(
                "refused by policy ({}): counted as soft",
                code.unwrap_or("5xx")
            ),
        ),
        "5" => verdict(
            Kind::Hard,
            false,
            match (gone, code) {
                (true, _) => "the mailbox does not exist".to_owned(),
                (false, Some(code)) => format!("permanent failure ({code})"),
                (false, None) => "permanent failure".to_owned(),
            },
        ),
        "2" => None,
        _ if says(&words, FULL) => verdict(Kind::Soft, false, "mailbox full".into()),
        _ if gone => verdict(Kind::Hard, false, "the mailbox does not exist".into()),
        _ if says(&words, POLICY) => verdict(Kind::Soft, true, "refused by policy".into()),
        _ if says(&words, TEMPORARY) => verdict(Kind::Soft, false, "temporary failure".into()),
        _ if action.as_deref() == Some("failed") => {
            verdict(Kind::Hard, false, "failed (no status given)".into())
        }
        _ => None,
    }
}

/// The first enhanced status code (`5.1.1`) in `text`: a class of 2, 4 or 5, then one to three
/// digits twice, not part of a longer dotted number (an IP address).
pub(super) fn enhanced_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let digits_at = |mut i: usize| {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        (i - start, i)
    };
    for (at, &byte) in bytes.iter().enumerate() {
        if !matches!(byte, b'2' | b'4' | b'5') {
            continue;
        }
        if at > 0 && (bytes[at - 1].is_ascii_digit() || bytes[at - 1] == b'.') {
            continue;
        }
        if bytes.get(at + 1) != Some(&b'.') {
            continue;
        }
        let (n1, end1) = digits_at(at + 2);
        if !(1..=3).contains(&n1) || bytes.get(end1) != Some(&b'.') {
            continue;
        }
        let (n2, end2) = digits_at(end1 + 1);
        if !(1..=3).contains(&n2) {
            continue;
        }
        let dotted_on =
            bytes.get(end2) == Some(&b'.') && bytes.get(end2 + 1).is_some_and(u8::is_ascii_digit);
        if !dotted_on {
            return Some(text[at..end2].to_owned());
        }
    }
    None
}

/// The class of a basic SMTP reply (`550 …`) at the start of the server's words, or after
/// `smtp;` or `said:`, as `"5"` or `"4"`.
fn basic_class(words: &str) -> Option<&'static str> {
    let starts =
        std::iter::once(0).chain(words.match_indices([';', ':', '\n']).map(|(at, _)| at + 1));
    for start in starts {
        let rest = words[start..].trim_start().as_bytes();
        if rest.len() >= 4
            && matches!(rest[0], b'4' | b'5')
            && rest[1].is_ascii_digit()
            && rest[2].is_ascii_digit()
            && matches!(rest[3], b' ' | b'-')
        {
            return Some(if rest[0] == b'5' { "5" } else { "4" });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(action: Option<&str>, status: Option<&str>, words: &str) -> Option<(Kind, bool)> {
        judge(action, status, words).map(|v| (v.kind, v.policy))
    }

    #[test]
    fn the_status_code_decides_and_the_words_only_when_it_cannot() {
        let cases = [
            (
                Some("failed"),
                Some("5.1.1"),
                "550 5.1.1 User unknown",
                Some((Kind::Hard, false)),
            ),
            (
                Some("failed"),
                Some("5.2.1"),
                "mailbox disabled",
                Some((Kind::Hard, false)),
            ),
            (
                Some("failed"),
                Some("5.1.10"),
                "RESOLVER.ADR.RecipientNotFound",
                Some((Kind::Hard, false)),
            ),
            (
                Some("failed"),
                Some("5.2.2"),
                "552 mailbox full",
                Some((Kind::Soft, false)),
            ),
            (
                Some("failed"),
                Some("5.0.0"),
                "550 Requested action not taken: mailbox is full",
                Some((Kind::Soft, false)),
            ),
            (
                Some("failed"),
                Some("5.7.1"),
                "550 5.7.1 Message rejected as spam",
                Some((Kind::Soft, true)),
            ),
            (
                Some("failed"),
                Some("5.0.0"),
                "554 blocked using zen.spamhaus.org",
                Some((Kind::Soft, true)),
            ),
            (
                Some("failed"),
                Some("5.0.0"),
                "550 user unknown",
                Some((Kind::Hard, false)),
            ),
            (
                Some("delayed"),
                Some("4.4.1"),
                "connection timed out",
                Some((Kind::Soft, false)),
            ),
            (
                Some("failed"),
                Some("4.4.7"),
                "expired",
                Some((Kind::Soft, false)),
            ),
            (Some("failed"), None, "", Some((Kind::Hard, false))),
            (Some("delivered"), Some("2.0.0"), "250 ok", None),
            (
                None,
                None,
                "Sorry, no mailbox here by that name. (#5.1.1)",
                Some((Kind::Hard, false)),
            ),
            (
                None,
                None,
                "552 sorry, mailbox full",
                Some((Kind::Soft, false)),
            ),
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
        assert_eq!(
            enhanced_code("smtp; 550 5.1.1 <a@b.c>"),
            Some("5.1.1".into())
        );
        assert_eq!(enhanced_code("(#5.1.1)"), Some("5.1.1".into()));
        assert_eq!(
            enhanced_code("550-5.7.26 unauthenticated"),
            Some("5.7.26".into())
        );
        assert_eq!(enhanced_code("host 10.5.1.1 said no"), None);
        assert_eq!(
            enhanced_code("host [192.0.2.5] said 5.4.1 x"),
            Some("5.4.1".into())
        );
        assert_eq!(enhanced_code("v2.3.4.5"), None);
        assert_eq!(basic_class("smtp; 550 no"), Some("5"));
        assert_eq!(basic_class("remote host said: 452 later"), Some("4"));
        assert_eq!(basic_class("5500 things"), None);
    }
}
