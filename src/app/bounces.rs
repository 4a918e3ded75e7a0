//! The `bounces` command: reads bounces and complaints (files, Maildir, mbox, standard input),
//! decides what each says about whom ([`crate::bounce`]), adds the dead mailboxes to the
//! campaign's `bounced` list and the people who complained to its `complained` list, and
//! records every decision in the bounce log.
//!
//! The order of the work keeps it cheap and safe: every message is read first (no lock held),
//! then the recipient list is read once for the keys and Message-IDs the messages need, then,
//! under the bounce log's lock, the decisions are made, the suppression lists written (synced),
//! and last the log (synced). A crash between the two leaves the log without the decision: the
//! next read makes it again, and the lists already hold the addresses.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;
use serde::Serialize;

use super::{Exit, Loaded};
use crate::address::RecipientKey;
use crate::bounce::{self, Decision, Directory, Kind, Reading, Tag, Wanted};
use crate::campaign::Campaign;
use crate::recipients::Row;
use crate::suppression::{Appender, Reason};
use crate::verp::Verp;

mod inputs;
mod log;

use log::{BounceLog, History, Record};

/// One message read, before it is decided.
struct Read {
    source: String,
    bounce: String,
    reading: Reading,
}

/// What became of one message: decided now (its records), or read before (what the log says).
enum Outcome {
    Decided(std::ops::Range<usize>),
    ReadBefore(Vec<(Kind, Option<String>)>),
}

/// What `--json` prints for one message.
#[derive(Debug, Serialize)]
struct Printed<'a> {
    source: &'a str,
    bounce: &'a str,
    kind: Kind,
    recipients: Vec<String>,
    /// Read before (the bounce log has it): nothing was done this time.
    already_read: bool,
    decisions: Vec<&'a Record>,
}

/// Where the bounce log of `campaign` lives.
pub fn bounce_log_path(campaign: &Campaign) -> PathBuf {
    campaign
        .dir()
        .join(format!("{}.bounces.jsonl", campaign.id))
}

pub(super) fn bounces(loaded: &Loaded, paths: &[PathBuf], json: bool) -> anyhow::Result<Exit> {
    let campaign = &loaded.campaign;
    let stdin = [PathBuf::from("-")];
    let paths = if paths.is_empty() {
        if std::io::stdin().is_terminal() {
            anyhow::bail!(
                "no PATH given: name the files, Maildir folders or mbox files to read, or - for \
                 standard input"
            );
        }
        &stdin[..]
    } else {
        paths
    };
    let verp = verp(loaded);
    let tag_of = |address: &str| tag(verp.as_ref(), address);

    let mut read = Vec::new();
    inputs::each_message(paths, &mut |source, raw| {
        let reading = bounce::read(raw);
        let bounce = bounce::bounce_id(&reading, raw);
        read.push(Read {
            source,
            bounce,
            reading,
        });
    })?;

    let mut wanted = Wanted::default();
    for message in &read {
        wanted.add(&message.reading, &tag_of);
    }
    let directory = directory(loaded, &wanted)?;

    let log_path = bounce_log_path(campaign);
    let (mut log, mut history) = BounceLog::open(&log_path)?;
    let decided = decide(
        campaign,
        &read,
        &tag_of,
        verp.is_some(),
        &directory,
        &mut history,
    );
    let bounced = suppress(campaign, Reason::Bounced, &decided.to_bounce)?;
    let complained = suppress(campaign, Reason::Complained, &decided.to_complain)?;
    log.append(&decided.records)?;
    drop(log);

    if json {
        print_json(&read, &decided);
    } else {
        summary(&read, &decided, &bounced, &complained, &log_path);
    }
    Ok(Exit::Done)
}

/// What this run decided: the bounce log's new records, what became of each message read, and
/// who goes on which list.
#[derive(Default)]
struct Decided {
    records: Vec<Record>,
    /// One for each message read, in order.
    outcomes: Vec<Outcome>,
    to_bounce: Vec<String>,
    to_complain: Vec<String>,
}

/// Decides every message the log does not know yet; `history` learns each decision as it is
/// made, so a message read twice in one run, or a person's second soft bounce, counts once.
fn decide(
    campaign: &Campaign,
    read: &[Read],
    tag_of: &dyn Fn(&str) -> Option<Tag>,
    tag_required: bool,
    directory: &Directory,
    history: &mut History,
) -> Decided {
    let now = SystemTime::now();
    let at = humantime::format_rfc3339_seconds(now).to_string();
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let window = i64::from(campaign.bounces.soft_days) * 86_400;
    let mut decided = Decided::default();
    for message in read {
        if let Some(seen) = history.seen(&message.bounce) {
            decided.outcomes.push(Outcome::ReadBefore(seen.to_vec()));
            continue;
        }
        let first = decided.records.len();
        let date = message.reading.date.filter(|&d| d > 0);
        // One message is one soft bounce of a person, however many of its blocks name them (an
        // alias expanded to several mailboxes; or a report written to reach the limit at once).
        let mut counted: HashMap<RecipientKey, u32> = HashMap::new();
        for decision in bounce::resolve(&message.reading, tag_of, tag_required, directory) {
            let mut record = record(message, &decision, &at, date);
            let goes_to = match (decision.report.kind, &decision.recipient) {
                (Kind::Hard, Some(recipient)) => Some((Reason::Bounced, recipient)),
                (Kind::Complaint, Some(recipient)) => Some((Reason::Complained, recipient)),
                // A refusal by policy is about the sender or the message: a block list refuses
                // everyone at a provider, and counting it would in time suppress them all.
                (Kind::Soft, Some(_)) if decision.report.policy => None,
                (Kind::Soft, Some(recipient)) => {
                    let count = *counted
                        .entry(RecipientKey::of(recipient))
                        .or_insert_with(|| {
                            history.count_soft(recipient, date.unwrap_or(now_secs), window)
                        });
                    record.soft_count = Some(count);
                    (count >= campaign.bounces.soft_limit).then_some((Reason::Bounced, recipient))
                }
                _ => None,
            };
            if let Some((reason, recipient)) = goes_to {
                record.suppressed = Some(reason.to_string());
                match reason {
                    Reason::Complained => decided.to_complain.push(recipient.clone()),
                    _ => decided.to_bounce.push(recipient.clone()),
                }
            }
            decided.records.push(record);
        }
        history.remember(&decided.records[first..]);
        let range = first..decided.records.len();
        decided.outcomes.push(Outcome::Decided(range));
    }
    decided
}

/// `--json`: one object a message read.
fn print_json(read: &[Read], decided: &Decided) {
    // A reader that stops reading (`| head`) ends the printing, not the run: the work is done.
    let mut out = std::io::stdout().lock();
    for (message, outcome) in read.iter().zip(&decided.outcomes) {
        let (decisions, seen) = match outcome {
            Outcome::Decided(range) => {
                let records = &decided.records[range.clone()];
                let seen = records
                    .iter()
                    .map(|r| (r.kind, r.recipient.clone()))
                    .collect();
                (records.iter().collect(), seen)
            }
            Outcome::ReadBefore(seen) => (Vec::new(), seen.clone()),
        };
        let printed = Printed {
            source: &message.source,
            bounce: &message.bounce,
            kind: bounce::strongest(seen.iter().map(|(kind, _)| *kind)),
            recipients: recipients(seen.iter().map(|(_, r)| r)),
            already_read: matches!(outcome, Outcome::ReadBefore(_)),
            decisions,
        };
        let line = serde_json::to_string(&printed).expect("a report serializes");
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
}

/// The campaign's VERP reader, when `[bounces] return_path` is set (the secret was checked when
/// the campaign was loaded: without it `bounces` refuses to run, since no tag could be verified).
fn verp(loaded: &Loaded) -> Option<Verp> {
    let campaign = &loaded.campaign;
    let return_path = campaign.bounces.return_path.as_ref()?;
    Verp::new(return_path, &campaign.id, loaded.secret.clone()?).ok()
}

/// What `address` says when it has the form of the campaign's VERP addresses.
fn tag(verp: Option<&Verp>, address: &str) -> Option<Tag> {
    let verp = verp?;
    verp.has_form(address)
        .then(|| verp.recipient_key(address).map_or(Tag::Forged, Tag::Ours))
}

/// Reads the recipient list once, keeping what `wanted` asks for.
fn directory(loaded: &Loaded, wanted: &Wanted) -> anyhow::Result<Directory> {
    let mut directory = Directory::default();
    if wanted.is_empty() {
        return Ok(directory);
    }
    let campaign = &loaded.campaign;
    let domain = campaign.from.email.domain();
    let mut reader = loaded.recipients()?;
    while let Some(row) = reader.next_row()? {
        let (Row::Valid(person) | Row::Suppressed(person, _)) = row else {
            continue;
        };
        let address: &str = person.email.as_ref();
        let id = if wanted.wants_message_ids() {
            crate::message::message_id(&campaign.id, domain, address)
        } else {
            String::new()
        };
        directory.offer(wanted, address, person.key, &id);
    }
    Ok(directory)
}

fn record(message: &Read, decision: &Decision, at: &str, date: Option<i64>) -> Record {
    Record {
        at: at.to_owned(),
        source: message.source.clone(),
        bounce: message.bounce.clone(),
        recipient: decision.recipient.clone(),
        kind: decision.report.kind,
        policy: decision.report.policy,
        status: decision.report.status.clone(),
        action: decision.report.action.clone(),
        reason: decision.report.reason.clone(),
        diagnostic: decision.report.diagnostic.clone(),
        date: date.and_then(log::rfc3339),
        found_by: decision.found_by,
        soft_count: None,
        suppressed: None,
    }
}

/// Adds `addresses` to the campaign's list for `reason` (one sync for all); how many were new,
/// and the file.
fn suppress(
    campaign: &Campaign,
    reason: Reason,
    addresses: &[String],
) -> anyhow::Result<(usize, PathBuf)> {
    let path = campaign.suppression_file(reason);
    if addresses.is_empty() {
        return Ok((0, path));
    }
    let mut appender = Appender::open(&path, reason)?;
    let list: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let added = appender
        .add(&list)
        .with_context(|| format!("cannot add to the {reason} list"))?;
    Ok((added.iter().filter(|&&new| new).count(), path))
}

fn recipients<'a>(all: impl Iterator<Item = &'a Option<String>>) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    for recipient in all.flatten() {
        if !list.contains(recipient) {
            list.push(recipient.clone());
        }
    }
    list
}

/// The few lines a person reads: counts, what went where, and the messages left unknown.
fn summary(
    read: &[Read],
    decided: &Decided,
    bounced: &(usize, PathBuf),
    complained: &(usize, PathBuf),
    log_path: &std::path::Path,
) {
    let mut counts = [0usize; 5];
    let mut again = 0;
    for outcome in &decided.outcomes {
        let Outcome::Decided(range) = outcome else {
            again += 1;
            continue;
        };
        let kinds = decided.records[range.clone()].iter().map(|r| r.kind);
        counts[bounce::strongest(kinds) as usize] += 1;
    }
    println!(
        "read {} message(s): {} hard, {} soft, {} complaint(s), {} not a bounce, {} unknown, \
         {again} already read",
        read.len(),
        counts[Kind::Hard as usize],
        counts[Kind::Soft as usize],
        counts[Kind::Complaint as usize],
        counts[Kind::NotABounce as usize],
        counts[Kind::Unknown as usize],
    );
    for ((added, path), reason) in [(bounced, "bounced"), (complained, "complained")] {
        if *added > 0 {
            println!("{reason}: {added} address(es) added to {}", path.display());
        }
    }
    for record in decided.records.iter().filter(|r| r.kind == Kind::Unknown) {
        println!(
            "unknown, left as it is: {}: {}",
            record.source, record.reason
        );
    }
    if !decided.records.is_empty() {
        println!("every decision is in {}", log_path.display());
    }
}
