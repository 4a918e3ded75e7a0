//! The `check` command: everything a send would do short of sending, and every problem found,
//! with its file and line, before mailbox providers or readers find it.

use std::time::SystemTime;

use crate::lint::{self, Finding, Severity};
use crate::recipients::Row;
use crate::window::Personal;

use super::{Exit, Loaded};

mod languages;
mod unloadable;

pub(super) use unloadable::report as report_unloadable;

/// What `check` finds before rendering anyone's message: the campaign, the letter, the secret,
/// the suppression files.
fn loaded_findings(loaded: &Loaded) -> Vec<Finding> {
    let campaign = &loaded.campaign;
    let mut findings = lint::campaign(campaign);
    for letter in &loaded.letters {
        findings.extend(lint::letter(letter, campaign.allow_utm));
    }
    findings.extend(languages::field_mismatches(loaded));
    if let Some(problem) = &loaded.secret_problem {
        let users = super::secret_users(campaign);
        findings.push(Finding::error(
            format!("{}: {}", campaign.path.display(), users.join(", ")),
            format!(
                "{} need{} a secret (links and tags are signed with it): {problem}",
                users.join(" and "),
                if users.len() == 1 { "s" } else { "" }
            ),
            "set it in the environment of every `missive send` (never in campaign.toml)",
        ));
    }
    for relay in std::iter::once(&campaign.smtp).chain(&campaign.fallback) {
        let field = relay.ca_field();
        if let Err(error) = super::trusted_roots(relay.ca_file.as_deref(), &field) {
            findings.push(Finding::error(
                format!("{}: {field}", campaign.path.display()),
                format!("{error:#}"),
                "point it at the PEM file of the authority that signed the relay's certificate",
            ));
        }
    }
    findings.extend(attachment_findings(campaign));
    findings.extend(loaded.suppression_skipped.iter().map(|skipped| {
        Finding::warning(
            format!("{}:{}", skipped.path.display(), skipped.line),
            skipped.problem.clone(),
            "correct the address or delete the line",
        )
    }));
    findings
}

/// Above this many octets of attached files, a message risks being refused: many providers
/// take at most 10 to 25 MB, counted after base64 (a third more).
const ATTACHMENTS_WARN_SIZE: u64 = 10 * 1024 * 1024;

/// The attached files providers block by type, and their total size past
/// [`ATTACHMENTS_WARN_SIZE`]. (An unreadable file stopped the campaign's load already.)
fn attachment_findings(campaign: &crate::campaign::Campaign) -> Vec<Finding> {
    let mut findings = Vec::new();
    let total = shared_size(campaign);
    for attachment in &campaign.attachments {
        let place = format!(
            "{}:{}: attachments",
            campaign.path.display(),
            attachment.line
        );
        let name = attachment.path.display().to_string();
        if crate::message::blocked_type(&name) {
            findings.push(Finding::warning(
                place,
                format!("{name} is of a type mailbox providers block (executables, scripts)"),
                "send a PDF or a link to the file instead",
            ));
        }
    }
    if total > ATTACHMENTS_WARN_SIZE {
        findings.push(Finding::warning(
            format!("{}: attachments", campaign.path.display()),
            format!(
                "the files attached to every message come to {:.1} MB, past {} MB: providers \
                 refuse large mail",
                total as f64 / 1e6,
                ATTACHMENTS_WARN_SIZE / (1024 * 1024)
            ),
            "link to the large files instead of attaching them",
        ));
    }
    findings
}

/// The size in octets of the files attached to every message.
fn shared_size(campaign: &crate::campaign::Campaign) -> u64 {
    campaign
        .attachments
        .iter()
        .map(|a| std::fs::metadata(&a.path).map_or(0, |m| m.len()))
        .sum()
}

/// A person's own file of a blocked type, or that makes their message too large. (One that
/// cannot be read rejects the row when the message is composed.)
fn personal_file_findings(
    loaded: &Loaded,
    shared: u64,
    recipient: &crate::recipients::Recipient,
) -> Vec<Finding> {
    let campaign = &loaded.campaign;
    let Some(column) = &campaign.attachment_column else {
        return Vec::new();
    };
    let value = recipient.field(&column.name).unwrap_or("").trim();
    let place = format!(
        "{}:{}: column `{}`",
        loaded.recipients_path.display(),
        recipient.line,
        column.name
    );
    let mut findings = Vec::new();
    if crate::message::blocked_type(value) {
        findings.push(Finding::warning(
            place.clone(),
            format!("{value} is of a type mailbox providers block (executables, scripts)"),
            "send a PDF instead",
        ));
    }
    let own = std::fs::metadata(campaign.dir().join(value)).map_or(0, |m| m.len());
    if !value.is_empty() && shared + own > ATTACHMENTS_WARN_SIZE {
        findings.push(Finding::warning(
            place,
            format!("with {value}, the attached files are past 10 MB: providers refuse large mail"),
            "make the file smaller, or link to it",
        ));
    }
    findings
}

pub(super) fn check(loaded: &Loaded) -> anyhow::Result<Exit> {
    let campaign = &loaded.campaign;
    let mut findings = loaded_findings(loaded);
    let shared = shared_size(campaign);
    let mut reader = loaded.recipients()?;
    findings.extend(languages::missing_column(loaded, reader.columns().names()));
    findings.extend(missing_zone_column(loaded, reader.columns().names()));
    let mut counts = loaded.template.languages().map(languages::Counts::new);
    let (mut valid, mut rejected, mut suppressed) = (0u64, 0u64, 0u64);
    // The layout's lints read one message of each letter; only the size can differ between
    // people of one letter.
    let mut linted = vec![false; loaded.letters.len()];
    let mut other_letters_seen = false;
    let mut largest: Option<(usize, String)> = None;
    let mut personal = campaign.window.as_ref().and_then(Personal::of);
    while let Some(row) = reader.next_row()? {
        match row {
            Row::Valid(recipient) => {
                // A zone a send would refuse: the row is rejected there, named here.
                if let Some(personal) = &mut personal
                    && let Err(problem) =
                        personal.at(recipient.field(personal.column()), SystemTime::now())
                {
                    rejected += 1;
                    let field = personal.column();
                    let list = loaded.recipients_path.display();
                    println!("{list}:{}: field `{field}`: {problem}", recipient.line);
                    continue;
                }
                if let Some(counts) = &mut counts {
                    counts.add(&recipient);
                }
                let rendered = loaded.template.render(&recipient);
                let place = format!(
                    "{}:{}: the message to {}",
                    loaded.recipients_path.display(),
                    recipient.line,
                    recipient.email
                );
                if !other_letters_seen {
                    // Every letter rendered and composed once, in the first person's row, even
                    // one nobody on the list gets yet.
                    other_letters_seen = true;
                    findings.extend(other_letters(loaded, &recipient, rendered.letter, &place));
                    linted.fill(true);
                    linted[rendered.letter] = false;
                }
                if !linted[rendered.letter] {
                    linted[rendered.letter] = true;
                    findings.extend(lint::rendered(
                        &rendered,
                        &loaded.letters[rendered.letter].links,
                        campaign.allow_utm,
                        &place,
                    ));
                } else if largest
                    .as_ref()
                    .is_none_or(|(size, _)| rendered.html.len() > *size)
                {
                    largest = Some((rendered.html.len(), place));
                }
                findings.extend(personal_file_findings(loaded, shared, &recipient));
                match loaded
                    .composer
                    .compose(&recipient, rendered, SystemTime::now())
                {
                    Ok(message) => {
                        let _ = message.formatted();
                        valid += 1;
                    }
                    Err(e) => {
                        rejected += 1;
                        println!(
                            "{}:{}: {e}",
                            loaded.recipients_path.display(),
                            recipient.line
                        );
                    }
                }
            }
            Row::Suppressed(..) => suppressed += 1,
            Row::Rejected(error) => {
                rejected += 1;
                println!("{}", error.at(&loaded.recipients_path));
            }
        }
    }
    if let Some((size, place)) = largest {
        findings.extend(lint::html_size(size, &place));
    }
    if let Some(counts) = &counts {
        findings.extend(counts.findings(&loaded.recipients_path));
    }
    findings.sort_by_key(|f| f.severity);
    for finding in &findings {
        println!("{finding}");
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    print_return_path(campaign);
    print_send_window(campaign);
    if let Some(counts) = &counts {
        println!("{}", counts.summary());
    }
    let letters: Vec<String> = loaded
        .letters
        .iter()
        .zip(&campaign.letters)
        .map(|(letter, settings)| {
            let language = counts
                .as_ref()
                .map(|_| format!("{}, ", settings.language))
                .unwrap_or_default();
            format!(
                "{} ({language}{} sections)",
                letter.path.display(),
                letter.sections.len()
            )
        })
        .collect();
    println!(
        "{}: {valid} recipient(s) ready, {rejected} row(s) rejected, {suppressed} suppressed; \
         letter{} {}; {errors} lint error(s), {} warning(s)",
        campaign.path.display(),
        if letters.len() > 1 { "s" } else { "" },
        letters.join(", "),
        findings.len() - errors
    );
    Ok(if rejected == 0 && errors == 0 {
        Exit::Done
    } else {
        Exit::Invalid
    })
}

/// The letters other than `chosen` rendered for `recipient`, linted and composed: with
/// `[letters]`, every language is seen once, whoever the list holds.
fn other_letters(
    loaded: &Loaded,
    recipient: &crate::recipients::Recipient,
    chosen: usize,
    place: &str,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for index in (0..loaded.letters.len()).filter(|&i| i != chosen) {
        let rendered = loaded.template.render_letter(index, recipient);
        let place = format!(
            "{place}, in its {} letter",
            loaded.campaign.letters[index].language
        );
        findings.extend(lint::rendered(
            &rendered,
            &loaded.letters[index].links,
            loaded.campaign.allow_utm,
            &place,
        ));
        if let Err(e) = loaded
            .composer
            .compose(recipient, rendered, SystemTime::now())
        {
            findings.push(Finding::error(
                place,
                e.to_string(),
                "mend what it names: this letter's message cannot be built",
            ));
        }
    }
    findings
}

/// When messages may go (`send_after`, `send_before`), and whether that time is already past.
fn print_send_window(campaign: &crate::campaign::Campaign) {
    use crate::sendlog::timestamp;
    let now = SystemTime::now();
    if let Some(after) = campaign.send_after {
        println!(
            "send_after {}: nothing is sent before then",
            timestamp(after)
        );
    }
    if let Some(before) = campaign.send_before {
        let past = if now >= before {
            " (already past: a send now sends nothing)"
        } else {
            ""
        };
        println!(
            "send_before {}: nothing is sent from then on, those not yet mailed expire{past}",
            timestamp(before)
        );
    }
    if let Some(window) = &campaign.window {
        let now = match window.at(now) {
            crate::window::State::Open { closes } => {
                format!("open now, closes {}", window.describe(closes))
            }
            crate::window::State::Closed { opens } => {
                format!("closed now, opens {}", window.describe(opens))
            }
        };
        match &window.time_zone_column {
            Some(column) => println!(
                "window {window}: messages go only then, read in each person's own time zone \
                 (column `{column}`; {} for those with none: {now})",
                window.time_zone
            ),
            None => println!("window {window}: messages go only then ({now})"),
        }
    }
}

/// A warning when the list has no `time_zone_column`: everyone is mailed in the window's zone.
fn missing_zone_column(loaded: &Loaded, columns: &[String]) -> Option<Finding> {
    let window = loaded.campaign.window.as_ref()?;
    let column = window.time_zone_column.as_deref()?;
    if columns.iter().any(|c| c == column) {
        return None;
    }
    Some(Finding::warning(
        loaded.recipients_path.display().to_string(),
        format!(
            "no column `{column}`: everyone is mailed in the window's {} (its columns are {})",
            window.time_zone,
            columns.join(", ")
        ),
        "add the column (Europe/Paris, America/Montreal, …), or set [window] time_zone_column \
         to the column that holds it",
    ))
}

/// Where bounces go: the envelope sender every message carries.
fn print_return_path(campaign: &crate::campaign::Campaign) {
    match &campaign.bounces.return_path {
        Some(return_path) => println!(
            "return path: {user}+<tag>@{domain}, a tag per person ([bounces] return_path): the \
             mail server of {domain} must deliver {user}+…@{domain} to {return_path}, where \
             `missive bounces` reads them",
            user = return_path.user(),
            domain = return_path.domain(),
        ),
        None => println!(
            "return path: {} (From's address: bounces go there, unmatched; set [bounces] \
             return_path to match each bounce to its person)",
            campaign.from.email
        ),
    }
}
