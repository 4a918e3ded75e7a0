//! Bounces without a delivery report: the free-text notices qmail ("Hi. This is the qmail-send
//! program…"), Exim ("The following address(es) failed"), old Exchange ("The following
//! recipient(s) could not be reached") and Postfix without DSN still send, and the line between
//! them and everything else in a bounce mailbox (auto-replies, people's answers).
//!
//! Such a notice is read only when the message looks like a bounce: sent by a mailer daemon or
//! postmaster, with a bounce's subject, or with Exim's `X-Failed-Recipients`. A message that does
//! not is never a bounce, whatever its words.

use mail_parser::Message;

use super::{Kind, Outcome, Report, plain_address, status};

/// Subjects bounces are sent with, in lower case.
const BOUNCE_SUBJECTS: &[&str] = &[
    "undelivered mail",
    "undeliverable",
    "delivery status notification",
    "delivery failure",
    "delivery has failed",
    "failure notice",
    "returned mail",
    "mail delivery failed",
    "mail delivery failure",
    "could not be delivered",
    "message not delivered",
    "non remis",
    "unzustellbar",
];

/// Subjects of auto-replies, in lower case.
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "auto:",
    "autoreply",
    "auto-reply",
    "réponse automatique",
    "absence",
    "abwesenheit",
];

/// Lines that introduce the copy of the returned message in a free-text bounce, in lower case.
const COPY_MARKERS: &[&str] = &[
    "below this line is a copy of the message",
    "this is a copy of the message",
    "original message follows",
    "----- original message -----",
    "the header of the original message",
    "original message headers",
];

/// Lines that introduce the list of failed recipients, in lower case.
const LIST_MARKERS: &[&str] = &[
    "following address",
    "following recipient",
    "could not be reached",
    "to the following",
    "could not be delivered to",
];

/// What a message's headers say it is.
pub(super) struct Looks {
    daemon: bool,
    bounce_subject: bool,
    failed_recipients: bool,
    auto_reply: Option<String>,
}

impl Looks {
    pub(super) fn of(message: &Message<'_>) -> Looks {
        let from = message
            .from()
            .and_then(|from| from.first())
            .and_then(|addr| addr.address())
            .unwrap_or("")
            .to_ascii_lowercase();
        let local = from.split('@').next().unwrap_or("");
        let daemon = matches!(
            local,
            "mailer-daemon" | "mailerdaemon" | "mail-daemon" | "postmaster"
        );
        let subject = message.subject().unwrap_or("").to_lowercase();
        let header = |name: &str| {
            message
                .header_values(name)
                .filter_map(|v| v.as_text())
                .map(str::to_ascii_lowercase)
                .next()
        };
        let auto_reply = if header("Auto-Submitted").is_some_and(|v| v.starts_with("auto-replied"))
        {
            Some("an auto-reply (Auto-Submitted: auto-replied)".to_owned())
        } else if header("X-Autoreply").is_some() || header("X-Autorespond").is_some() {
            Some("an auto-reply (X-Autoreply)".to_owned())
        } else if header("Precedence").is_some_and(|v| v.contains("auto_reply")) {
            Some("an auto-reply (Precedence: auto_reply)".to_owned())
        } else {
            AUTO_REPLY_SUBJECTS
                .iter()
                .find(|s| subject.starts_with(*s))
                .map(|s| format!("an auto-reply (subject: {s})"))
        };
        Looks {
            daemon,
            bounce_subject: BOUNCE_SUBJECTS.iter().any(|s| subject.contains(s)),
            failed_recipients: message
                .header_values("X-Failed-Recipients")
                .next()
                .is_some(),
            auto_reply,
        }
    }

    /// A mailer daemon's message is a bounce even with an auto-reply's headers (Exim sends its
    /// bounces `Auto-Submitted: auto-replied`); a person's auto-reply is not, whatever its subject.
    pub(super) fn like_bounce(&self) -> bool {
        self.daemon || self.failed_recipients || (self.bounce_subject && self.auto_reply.is_none())
    }

    pub(super) fn why_not(&self) -> String {
        self.auto_reply.clone().unwrap_or_else(|| {
            "no report and no sign of a bounce (a reply or another message)".to_owned()
        })
    }
}

/// The text of every text part, HTML ones turned into text.
pub(super) fn body(message: &Message<'_>) -> String {
    let mut text = String::new();
    for i in 0..message.text_body_count() {
        if let Some(part) = message.body_text(i) {
            text.push_str(&part);
            text.push('\n');
        }
    }
    text.replace("\r\n", "\n")
}

/// The notice, and the copy of the returned message after it when the notice quotes one.
pub(super) fn split_at_copy(body: &str) -> (&str, Option<&str>) {
    let mut at = 0;
    for line in body.split_inclusive('\n') {
        let lower = line.to_lowercase();
        if COPY_MARKERS.iter().any(|marker| lower.contains(marker)) {
            let copy = body[at + line.len()..].trim_start_matches(['\n', ' ']);
            return (&body[..at], Some(copy));
        }
        at += line.len();
    }
    (body, None)
}

/// The reports of a free-text notice: one for each recipient it lists with the server's words
/// after it, else one for the recipients Exim names in `X-Failed-Recipients`, else one for
/// whoever the returned message was to (the edge finds them), judged on the whole notice.
pub(super) fn free_text(notice: &str, failed_recipients: Vec<String>) -> Outcome {
    let entries = entries(notice);
    let mut reports: Vec<Report> = entries
        .into_iter()
        .map(|(address, words)| report(vec![address], &words))
        .collect();
    if reports.is_empty() {
        reports.push(report(failed_recipients, notice));
    }
    if reports.iter().all(|r| r.kind == Kind::Unknown) {
        return Outcome::Unknown(
            "looks like a bounce, but its words say neither a permanent nor a temporary failure"
                .into(),
        );
    }
    Outcome::Reports(reports)
}

fn report(addresses: Vec<String>, words: &str) -> Report {
    let one_line = words.split_whitespace().collect::<Vec<_>>().join(" ");
    let diagnostic = (!one_line.is_empty()).then(|| truncate(&one_line, 300));
    match status::judge(None, None, words) {
        Some(verdict) => Report {
            kind: verdict.kind,
            policy: verdict.policy,
            status: verdict.status,
            action: None,
            diagnostic,
            reason: verdict.reason,
            addresses,
        },
        None => Report {
            kind: Kind::Unknown,
            policy: false,
            status: None,
            action: None,
            diagnostic,
            reason: "no failure found in its words".into(),
            addresses,
        },
    }
}

/// The recipients a notice lists after a line such as "The following address(es) failed:",
/// each with the words that follow it up to the next recipient or a blank line after words:
/// `<a@b.c>:` (qmail), `  a@b.c` (Exim), `a@b.c on 1/2/2003` (Exchange), `<a@b.c>: host … said:
/// 550 …` (Postfix).
fn entries(notice: &str) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut listing = false;
    let mut words_seen = false;
    for line in notice.lines() {
        let trimmed = line.trim();
        let lower = trimmed.to_lowercase();
        if LIST_MARKERS.iter().any(|marker| lower.contains(marker)) && entries.is_empty() {
            listing = true;
            continue;
        }
        let first = trimmed.split_whitespace().next().unwrap_or("");
        let starts_entry = first.starts_with('<') || first.ends_with(':') || listing;
        if let Some(address) = plain_address(first).filter(|_| starts_entry) {
            let rest = trimmed[first.len()..].trim();
            // "a@b.c on 1/2/2003 10:00 AM": the date is no part of the reason.
            let rest = if rest.starts_with("on ") { "" } else { rest };
            entries.push((address, rest.to_owned()));
            words_seen = !rest.is_empty();
            continue;
        }
        let Some((_, words)) = entries.last_mut() else {
            continue;
        };
        if trimmed.is_empty() {
            if words_seen {
                // Words after a blank line belong to no one; the next address opens an entry.
                entries.push((String::new(), String::new()));
            }
            continue;
        }
        if !words.is_empty() {
            words.push('\n');
        }
        words.push_str(trimmed);
        words_seen = true;
    }
    entries.retain(|(address, _)| !address.is_empty());
    entries
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_qmail_exim_exchange_and_postfix() {
        let qmail = "Hi. This is the qmail-send program at mx.example.net.\n\
            I'm afraid I wasn't able to deliver your message to the following addresses.\n\
            This is a permanent error; I've given up. Sorry it didn't work out.\n\n\
            <gone@example.net>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n";
        assert_eq!(
            entries(qmail),
            vec![(
                "gone@example.net".to_owned(),
                "Sorry, no mailbox here by that name. (#5.1.1)".to_owned()
            )]
        );
        let exim = "A message that you sent could not be delivered to one or more of its\n\
            recipients. This is a permanent error. The following address(es) failed:\n\n  \
            a@example.com\n    host mx.example.com [192.0.2.1]\n    \
            SMTP error from remote mail server after RCPT TO:<a@example.com>:\n    \
            550 5.1.1 No such user\n\n";
        let found = entries(exim);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "a@example.com");
        assert!(found[0].1.contains("550 5.1.1 No such user"), "{found:?}");
        let postfix = "<b@example.com>: host mx[192.0.2.2] said: 550 5.1.1 unknown (in reply\n    to RCPT TO command)\n";
        let found = entries(postfix);
        assert_eq!(found[0].0, "b@example.com");
        assert!(found[0].1.starts_with("host mx"), "{found:?}");
        assert!(entries("Hello,\nthanks for your letter.\n").is_empty());
    }

    #[test]
    fn the_copy_starts_after_its_marker() {
        let (notice, copy) =
            split_at_copy("Sorry.\n--- Below this line is a copy of the message.\n\nTo: a@b.c\n");
        assert_eq!(notice, "Sorry.\n");
        assert_eq!(copy, Some("To: a@b.c\n"));
    }
}
