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

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;
use serde::Serialize;

use super::{Exit, Loaded};
use crate::bounce::{self, Decision, Directory, Kind, Reading, Tag, Wanted};
use crate::campaign::Campaign;
use crate::recipients::Row;
use crate::suppression::{Appender, Reason};
use crate::unsubscribe::{SECRET_VAR, Secret};
use crate::verp::Verp;

mod inputs;
mod log;

use log::{BounceLog, Record};

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
    let verp = verp(campaign);
    let tag_of = |address: &str| tag(campaign, verp.as_ref(), address);

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
    let now = SystemTime::now();
    let at = humantime::format_rfc3339_seconds(now).to_string();
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let window = i64::from(campaign.bounces.soft_days) * 86_400;
    let mut records: Vec<Record> = Vec::new();
    // For each message: its records in `records` (a range), or what the log said before.
    let mut outcomes = Vec::with_capacity(read.len());
    let mut to_bounce: Vec<String> = Vec::new();
    let mut to_complain: Vec<String> = Vec::new();
    for message in &read {
        if let Some(seen) = history.seen(&message.bounce) {
            outcomes.push(Outcome::ReadBefore(seen.to_vec()));
            continue;
        }
        let first = records.len();
        let date = message.reading.date.filter(|&d| d > 0);
        for decision in bounce::resolve(&message.reading, &tag_of, &directory) {
            let mut record = record(message, &decision, &at, date);
            match (decision.kind, &decision.recipient) {
                (Kind::Hard, Some(recipient)) => {
                    to_bounce.push(recipient.clone());
                    record.suppressed = Some(Reason::Bounced.to_string());
                }
                (Kind::Complaint, Some(recipient)) => {
                    to_complain.push(recipient.clone());
                    record.suppressed = Some(Reason::Complained.to_string());
                }
                (Kind::Soft, Some(recipient)) => {
                    let count = history.count_soft(recipient, date.unwrap_or(now_secs), window);
                    record.soft_count = Some(count);
                    if count >= campaign.bounces.soft_limit {
                        to_bounce.push(recipient.clone());
                        record.suppressed = Some(Reason::Bounced.to_string());
                    }
                }
                _ => {}
            }
            records.push(record);
        }
        history.remember(&records[first..]);
        outcomes.push(Outcome::Decided(first..records.len()));
    }

    let bounced = suppress(campaign, Reason::Bounced, &to_bounce)?;
    let complained = suppress(campaign, Reason::Complained, &to_complain)?;
    log.append(&records)?;
    drop(log);

    if json {
        // A reader that stops reading (`| head`) ends the printing, not the run: the work is done.
        let mut out = std::io::stdout().lock();
        for (message, outcome) in read.iter().zip(&outcomes) {
            let printed = match outcome {
                Outcome::Decided(range) => {
                    let decisions: Vec<&Record> = records[range.clone()].iter().collect();
                    let kinds: Vec<Kind> = decisions.iter().map(|r| r.kind).collect();
                    Printed {
                        source: &message.source,
                        bounce: &message.bounce,
                        kind: strongest(&kinds),
                        recipients: recipients(decisions.iter().map(|r| &r.recipient)),
                        already_read: false,
                        decisions,
                    }
                }
                Outcome::ReadBefore(seen) => Printed {
                    source: &message.source,
                    bounce: &message.bounce,
                    kind: strongest(&seen.iter().map(|(k, _)| *k).collect::<Vec<_>>()),
                    recipients: recipients(seen.iter().map(|(_, r)| r)),
                    already_read: true,
                    decisions: Vec::new(),
                },
            };
            let line = serde_json::to_string(&printed).expect("a report serializes");
            if writeln!(out, "{line}").is_err() {
                break;
            }
        }
    } else {
        summary(&read, &outcomes, &records, &bounced, &complained, &log_path);
    }
    Ok(Exit::Done)
}

/// The campaign's VERP reader, when `[bounces] return_path` is set and the secret is usable.
fn verp(campaign: &Campaign) -> Option<Verp> {
    let return_path = campaign.bounces.return_path.as_ref()?;
    match Secret::from_env() {
        Ok(secret) => Verp::new(return_path, &campaign.id, secret).ok(),
        Err(problem) => {
            eprintln!(
                "note: [bounces] return_path is set but {SECRET_VAR} is not usable ({problem}): \
                 VERP addresses are not read; bounces are matched by what they report"
            );
            None
        }
    }
}

/// What `address` says when it has the form of the campaign's VERP addresses.
fn tag(campaign: &Campaign, verp: Option<&Verp>, address: &str) -> Option<Tag> {
    let (verp, return_path) = verp.zip(campaign.bounces.return_path.as_ref())?;
    let (local, domain) = address.rsplit_once('@')?;
    let (base, _) = local.split_once('+')?;
    let ours = base.eq_ignore_ascii_case(return_path.user())
        && domain.eq_ignore_ascii_case(return_path.domain());
    ours.then(|| verp.recipient_key(address).map_or(Tag::Forged, Tag::Ours))
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
        kind: decision.kind,
        policy: decision.policy,
        status: decision.status.clone(),
        action: decision.action.clone(),
        reason: decision.reason.clone(),
        diagnostic: decision.diagnostic.clone(),
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

fn strongest(kinds: &[Kind]) -> Kind {
    [Kind::Complaint, Kind::Hard, Kind::Soft, Kind::Unknown]
        .into_iter()
        .find(|kind| kinds.contains(kind))
        .unwrap_or(Kind::NotABounce)
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
    outcomes: &[Outcome],
    records: &[Record],
    bounced: &(usize, PathBuf),
    complained: &(usize, PathBuf),
    log_path: &std::path::Path,
) {
    let mut counts = [0usize; 5];
    let mut again = 0;
    for outcome in outcomes {
        let Outcome::Decided(range) = outcome else {
            again += 1;
            continue;
        };
        let kinds: Vec<Kind> = records[range.clone()].iter().map(|r| r.kind).collect();
        counts[strongest(&kinds) as usize] += 1;
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
    for record in records.iter().filter(|r| r.kind == Kind::Unknown) {
        println!(
            "unknown, left as it is: {}: {}",
            record.source, record.reason
        );
    }
    if !records.is_empty() {
        println!("every decision is in {}", log_path.display());
    }
}
