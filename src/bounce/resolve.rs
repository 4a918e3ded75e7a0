//! Whom a bounce is about: the clues of a [`Reading`] turned into addresses of the campaign's
//! list, in order of trust.
//!
//! 1. The VERP tag of the address the bounce was sent to: authenticated, it names the person
//!    even when the bouncing server mangles the rest. A tag of this return path that does not
//!    verify (another campaign's, or forged) makes the whole message [`Kind::Unknown`]: a
//!    forged bounce must not suppress anyone by the other clues.
//! 2. The addresses the report itself names (`Original-Recipient`, `Final-Recipient`…).
//! 3. The returned message's `Message-ID` (missive's are made of the campaign and the person).
//! 4. The returned message's `To`.
//!
//! An address of the list wins over one that is not (a `Final-Recipient` rewritten by a
//! forwarder names a mailbox the campaign never wrote to); off the list, only the report's own
//! addresses are taken. The edge gathers what the list holds
//! for the clues of every message first ([`Wanted`]), reads the list once, and hands the
//! answers over as a [`Directory`].

use std::collections::{HashMap, HashSet};

use super::{Kind, Outcome, Reading, Report};
use crate::address::RecipientKey;

/// What the envelope address of a bounce says, when it is one of the campaign's VERP addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Its tag verifies and names this person.
    Ours(RecipientKey),
    /// It has the return path's form, but its tag does not verify for this campaign.
    Forged,
}

/// The people and Message-IDs the messages read need looked up in the list.
#[derive(Debug, Default)]
pub struct Wanted {
    keys: HashSet<RecipientKey>,
    message_ids: HashSet<String>,
}

impl Wanted {
    pub fn add(&mut self, reading: &Reading, tag_of: &dyn Fn(&str) -> Option<Tag>) {
        let Outcome::Reports(reports) = &reading.outcome else {
            return;
        };
        for address in &reading.clues.envelope {
            if let Some(Tag::Ours(key)) = tag_of(address) {
                self.keys.insert(key);
            }
        }
        let named = reports.iter().flat_map(|r| &r.addresses);
        for address in named.chain(&reading.clues.returned_to) {
            self.keys.insert(RecipientKey::of(address));
        }
        if let Some(id) = &reading.clues.returned_message_id {
            self.message_ids.insert(id.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.message_ids.is_empty()
    }

    /// True when Message-IDs are wanted (the edge then makes one for each person of the list).
    pub fn wants_message_ids(&self) -> bool {
        !self.message_ids.is_empty()
    }
}

/// What the list says of the [`Wanted`] keys and Message-IDs.
#[derive(Debug, Default)]
pub struct Directory {
    by_key: HashMap<RecipientKey, String>,
    by_message_id: HashMap<String, String>,
}

impl Directory {
    /// Takes a person of the list (`message_id` with or without its angle brackets) and keeps
    /// what `wanted` asks for.
    pub fn offer(&mut self, wanted: &Wanted, address: &str, key: RecipientKey, message_id: &str) {
        if wanted.keys.contains(&key) {
            self.by_key.insert(key, address.to_owned());
        }
        let id = message_id.trim_start_matches('<').trim_end_matches('>');
        if wanted.message_ids.contains(id) {
            self.by_message_id.insert(id.to_owned(), address.to_owned());
        }
    }
}

/// How the recipient of a decision was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FoundBy {
    Verp,
    Report,
    MessageId,
    To,
}

/// What to do about one recipient of a message (or about the message, when it names nobody).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub recipient: Option<String>,
    pub found_by: Option<FoundBy>,
    /// The report the decision follows, with its kind and reason as decided: `unknown` when
    /// whom a failure is about cannot be told. A decision about a message that holds no report
    /// has one naming nobody, that says only why.
    pub report: Report,
}

impl Decision {
    fn about_message(kind: Kind, reason: &str) -> Decision {
        Decision {
            recipient: None,
            found_by: None,
            report: Report {
                kind,
                policy: false,
                status: None,
                action: None,
                diagnostic: None,
                reason: reason.to_owned(),
                addresses: Vec::new(),
            },
        }
    }

    fn of(report: &Report, recipient: Option<(String, FoundBy)>) -> Decision {
        let mut report = report.clone();
        if recipient.is_none() && matches!(report.kind, Kind::Hard | Kind::Soft | Kind::Complaint) {
            report.kind = Kind::Unknown;
            report.reason = format!("{}, but whom it is about cannot be told", report.reason);
        }
        let (recipient, found_by) = recipient.unzip();
        Decision {
            recipient,
            found_by,
            report,
        }
    }
}

/// The decisions about one message: one a recipient, or one about the message itself.
///
/// With `tag_required` (the campaign sends with VERP, and its key is at hand), only a verified
/// tag names a person: a bounce or complaint without one is `unknown` and suppresses nobody,
/// since anyone can mail the bounce address a report naming anyone. Without VERP the report's
/// own clues are all there is, and they are trusted.
pub fn resolve(
    reading: &Reading,
    tag_of: &dyn Fn(&str) -> Option<Tag>,
    tag_required: bool,
    directory: &Directory,
) -> Vec<Decision> {
    let reports = match &reading.outcome {
        Outcome::NotABounce(why) => return vec![Decision::about_message(Kind::NotABounce, why)],
        Outcome::Unknown(why) => return vec![Decision::about_message(Kind::Unknown, why)],
        Outcome::Reports(reports) => reports,
    };
    let tags: Vec<Tag> = reading
        .clues
        .envelope
        .iter()
        .filter_map(|a| tag_of(a))
        .collect();
    let ours = tags.iter().find_map(|tag| match tag {
        Tag::Ours(key) => Some(*key),
        Tag::Forged => None,
    });
    match ours {
        Some(key) => {
            let same = |a: &&String| RecipientKey::of(a) == key;
            let report = reports
                .iter()
                .find(|r| r.addresses.iter().any(|a| same(&a)))
                .unwrap_or(&reports[0]);
            let address = directory.by_key.get(&key).cloned().or_else(|| {
                let named = report.addresses.iter().chain(&reading.clues.returned_to);
                named.filter(same).find(|a| valid(a)).cloned()
            });
            vec![Decision::of(report, address.map(|a| (a, FoundBy::Verp)))]
        }
        None if !tags.is_empty() => vec![Decision::about_message(
            Kind::Unknown,
            "sent to a VERP address whose tag does not verify for this campaign (another \
             campaign's bounce, or forged): nothing done",
        )],
        None if tag_required => vec![Decision::about_message(
            Kind::Unknown,
            "no VERP tag of this campaign (not sent to a person's return path, nor quoting \
             one): with [bounces] return_path only a tagged bounce can suppress someone, so a \
             forged or foreign one names nobody; nothing done",
        )],
        None => reports
            .iter()
            .map(|report| {
                let single = reports.len() == 1;
                Decision::of(report, recipient(report, reading, single, directory))
            })
            .collect(),
    }
}

/// The recipient of `report` by the clues after VERP: the first in the list, else the first
/// address the report names.
fn recipient(
    report: &Report,
    reading: &Reading,
    single: bool,
    directory: &Directory,
) -> Option<(String, FoundBy)> {
    let clues = &reading.clues;
    let mut candidates: Vec<(String, FoundBy)> = report
        .addresses
        .iter()
        .map(|a| (a.clone(), FoundBy::Report))
        .collect();
    if single {
        let by_id = clues
            .returned_message_id
            .as_ref()
            .and_then(|id| directory.by_message_id.get(id));
        candidates.extend(by_id.map(|a| (a.clone(), FoundBy::MessageId)));
        candidates.extend(clues.returned_to.iter().map(|a| (a.clone(), FoundBy::To)));
    }
    candidates.retain(|(a, _)| valid(a));
    let listed = candidates.iter().find_map(|(address, found_by)| {
        if *found_by == FoundBy::MessageId {
            return Some((address.clone(), *found_by));
        }
        let in_list = directory.by_key.get(&RecipientKey::of(address))?;
        Some((in_list.clone(), *found_by))
    });
    // Off the list, only the report's own word counts: a returned `To` may be redacted
    // (feedback loops write `redacted@…`) or be someone the campaign never mailed.
    listed.or_else(|| {
        candidates
            .into_iter()
            .find(|(_, found_by)| *found_by == FoundBy::Report)
    })
}

fn valid(address: &str) -> bool {
    address.parse::<lettre::Address>().is_ok()
}

/// The kind of a whole message from its decisions' kinds: the strongest (a complaint, then a
/// hard bounce, then a soft one, then unknown), or not a bounce when there is none of those.
pub fn strongest(kinds: impl IntoIterator<Item = Kind>) -> Kind {
    let kinds: Vec<Kind> = kinds.into_iter().collect();
    [Kind::Complaint, Kind::Hard, Kind::Soft, Kind::Unknown]
        .into_iter()
        .find(|kind| kinds.contains(kind))
        .unwrap_or(Kind::NotABounce)
}
