//! The machine-readable parts of standard reports: `message/delivery-status` (RFC 3464) and
//! `message/feedback-report` (RFC 5965). Both are header-like fields (`Name: value`, folded
//! onto indented lines); a delivery status has one block of fields for the message, then one
//! block a recipient, blocks separated by blank lines.

use super::{Clues, Kind, Outcome, Report, plain_address, status};

/// The fields of one block, in order, names in lower case, folded lines unfolded.
fn fields(block: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    fields
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Blocks of fields separated by blank lines (CRLF or LF).
fn blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .map(fields)
        .filter(|block| !block.is_empty())
        .collect()
}

/// A delivery report: one [`Report`] a recipient whose delivery failed or is delayed. A report
/// of success only is not a bounce.
pub(super) fn delivery_status(text: &str, clues: &mut Clues) -> Outcome {
    let mut reports = Vec::new();
    let mut succeeded = 0;
    for block in blocks(text) {
        let names_recipient = ["final-recipient", "original-recipient", "action"]
            .iter()
            .any(|name| field(&block, name).is_some());
        if !names_recipient {
            // The fields about the message: Gmail names the returned message here.
            if let Some(id) = field(&block, "x-original-message-id") {
                clues.returned_message_id = Some(strip_brackets(id));
            }
            continue;
        }
        let action = field(&block, "action");
        let diagnostic = field(&block, "diagnostic-code").map(|d| {
            let d = d.trim();
            // `smtp; 550 …`: the type is no news.
            match d.split_once(';') {
                Some((kind, rest)) if !kind.contains(' ') => rest.trim().to_owned(),
                _ => d.to_owned(),
            }
        });
        let addresses = [
            "original-recipient",
            "final-recipient",
            "x-actual-recipient",
        ]
        .iter()
        .filter_map(|name| field(&block, name).and_then(plain_address))
        .fold(Vec::new(), |mut all, address| {
            if !all.contains(&address) {
                all.push(address);
            }
            all
        });
        let words = diagnostic.as_deref().unwrap_or("");
        match status::judge(action, field(&block, "status"), words) {
            Some(verdict) => reports.push(Report {
                kind: verdict.kind,
                policy: verdict.policy,
                status: verdict.status,
                action: action.map(str::to_owned),
                diagnostic,
                reason: verdict.reason,
                addresses,
            }),
            None if matches!(
                action.map(str::to_ascii_lowercase).as_deref(),
                Some("delivered" | "relayed" | "expanded")
            ) =>
            {
                succeeded += 1;
            }
            None => reports.push(Report {
                kind: Kind::Unknown,
                policy: false,
                status: field(&block, "status").map(str::to_owned),
                action: action.map(str::to_owned),
                diagnostic,
                reason: "a delivery report whose action and status say nothing".into(),
                addresses,
            }),
        }
    }
    if !reports.is_empty() {
        Outcome::Reports(reports)
    } else if succeeded > 0 {
        Outcome::NotABounce("a delivery report of success".into())
    } else {
        Outcome::Unknown("a delivery report that names no recipient".into())
    }
}

/// A feedback report: a complaint about the returned message, unless its type says otherwise.
pub(super) fn feedback(text: &str, clues: &mut Clues) -> Outcome {
    let fields: Vec<(String, String)> = blocks(text).into_iter().flatten().collect();
    let feedback_type = field(&fields, "feedback-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    // The envelope sender of the message complained of: the person's VERP address.
    for (name, value) in &fields {
        if name == "original-mail-from" {
            clues.envelope.extend(plain_address(value));
        }
    }
    if matches!(feedback_type.as_str(), "not-spam" | "auth-failure") {
        return Outcome::NotABounce(format!(
            "a feedback report of type {feedback_type}, not a complaint"
        ));
    }
    let addresses = fields
        .iter()
        .filter(|(name, _)| name == "original-rcpt-to" || name == "removal-recipient")
        .filter_map(|(_, value)| plain_address(value))
        .collect();
    let shown = if feedback_type.is_empty() {
        "abuse"
    } else {
        &feedback_type
    };
    Outcome::Reports(vec![Report {
        kind: Kind::Complaint,
        policy: false,
        status: None,
        action: Some(shown.to_owned()),
        diagnostic: field(&fields, "user-agent").map(str::to_owned),
        reason: format!("complaint (feedback report: {shown})"),
        addresses,
    }])
}

fn strip_brackets(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}
