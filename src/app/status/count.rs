//! Counting the people of the list where the send log puts them: the pass over the list that is
//! most of `status`'s time on a list of a million.
//!
//! Each valid row of the list is matched against the log, one by one: a person of the list not in
//! the log is pending, one in the log no longer on the list is not counted, and a second row of a
//! person is a rejected row. Without a window read in each person's own zone, what a row says is
//! its person's key and no more, so the list is read into keys on a thread of its own while the
//! log is read on this one (two cores), and the keys are sorted, their repeats found side by
//! side, and looked up in the log in key order: the log's maps are sorted by key too, so each
//! look lands beside the last instead of missing the processor's caches, as a look a row did. The
//! sorted keys (17 bytes a person) stand in for the list's duplicate check (16 a person), which
//! the pass no longer keeps: the peak memory does not grow. A personal window needs each row's
//! zone column, so that campaign is counted row by row, in the list's order, as `send` reads it.

use std::time::SystemTime;

use super::{Report, SuppressedBy};
use crate::address::RecipientKey;
use crate::campaign::Campaign;
use crate::recipients::{KeyRow, RecipientReader, RecipientsError, Row};
use crate::send::{Decision, InDoubt, decide};
use crate::sendlog::{Replay, SendLogError, Status};
use crate::suppression::Reason;
use crate::window::{Personal, State};

/// The list's valid rows as keys, with the suppression list naming each person, and what was
/// counted of the rest while reading it.
#[derive(Debug, Default)]
pub(super) struct ListKeys {
    keys: Vec<(RecipientKey, Option<Reason>)>,
    total: u64,
    /// Rows refused on their own (repeats are found later, among the keys).
    rejected: u64,
}

impl ListKeys {
    /// Reads the rest of the list.
    pub(super) fn read(mut reader: RecipientReader) -> Result<ListKeys, RecipientsError> {
        let mut list = ListKeys::default();
        while let Some(row) = reader.next_key()? {
            list.total += 1;
            match row {
                KeyRow::Valid(key, suppressed) => list.keys.push((key, suppressed)),
                KeyRow::Rejected(_) => list.rejected += 1,
            }
        }
        Ok(list)
    }

    /// Counts each person of the list into `report`, in key order; a repeat of a person is a
    /// rejected row, as the list's duplicate check makes it.
    pub(super) fn count(
        mut self,
        report: &mut Report,
        replay: &Replay,
        campaign: &Campaign,
        now: SystemTime,
    ) {
        report.total += self.total;
        report.invalid += self.rejected;
        // A person's rows carry the same key, hence the same suppression: which of them comes
        // first in the sort does not matter.
        self.keys
            .sort_unstable_by_key(|(key, _)| u128::from_be_bytes(key.0));
        let mut previous = None;
        for (key, suppressed) in self.keys {
            if previous == Some(key) {
                report.invalid += 1;
                continue;
            }
            previous = Some(key);
            if let Some(reason) = suppressed {
                report.suppressed_by.count(reason);
            }
            let decision = decision(replay, &key, campaign, now);
            tally(report, &decision, suppressed.is_some());
        }
    }
}

/// Reads the log and the list, side by side when nothing of a row but its key is needed;
/// counts the list's people into `report`. The log's error, if any, comes first, as when one was
/// read after the other.
pub(super) fn read_and_count(
    report: &mut Report,
    reader: RecipientReader,
    read_log: impl FnOnce() -> Result<(Replay, Option<u64>), SendLogError>,
    campaign: &Campaign,
    now: SystemTime,
) -> anyhow::Result<(Replay, Option<SystemTime>)> {
    if let Some(personal) = campaign.window.as_ref().and_then(Personal::of) {
        let (replay, senders_active) = read_log()?;
        report.senders_active = senders_active;
        let opens = count_in_order(report, reader, personal, &replay, campaign, now)?;
        return Ok((replay, opens));
    }
    let (log, list) = std::thread::scope(|scope| {
        let listing = scope.spawn(move || ListKeys::read(reader));
        let log = read_log();
        let list = listing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (log, list)
    });
    let (replay, senders_active) = log?;
    report.senders_active = senders_active;
    list?.count(report, &replay, campaign, now);
    Ok((replay, None))
}

/// Counts row by row, reading each one's zone: returns when the window first opens for someone
/// still to be mailed, when it is closed for them.
fn count_in_order(
    report: &mut Report,
    mut reader: RecipientReader,
    mut personal: Personal,
    replay: &Replay,
    campaign: &Campaign,
    now: SystemTime,
) -> Result<Option<SystemTime>, RecipientsError> {
    let mut opens: Option<SystemTime> = None;
    while let Some(row) = reader.next_row()? {
        report.total += 1;
        let (recipient, suppressed) = match row {
            Row::Valid(recipient) => (recipient, false),
            Row::Suppressed(recipient, reason) => {
                report.suppressed_by.count(reason);
                (recipient, true)
            }
            Row::Rejected(_) => {
                report.invalid += 1;
                continue;
            }
        };
        let decision = decision(replay, &recipient.key, campaign, now);
        // A zone the engine would refuse makes the row invalid, as a send reports it: only
        // for someone a send would mail now (one already mailed keeps their outcome).
        let own_window = match decision {
            Decision::Send { .. } if !suppressed => {
                match personal.at(recipient.field(personal.column()), now) {
                    Ok(state) => Some(state),
                    Err(_) => {
                        report.invalid += 1;
                        continue;
                    }
                }
            }
            _ => None,
        };
        if tally(report, &decision, suppressed)
            && let Some(State::Closed { opens: at }) = own_window
        {
            opens = opens.min(Some(at)).or(Some(at));
        }
    }
    Ok(opens)
}

/// The engine's own decision. `status` says where a person stands, so a deferred one stays
/// "deferred" whether it is due, not yet due, or about to be given up, and an in-doubt one "in
/// doubt" whichever `--in-doubt` a send is given.
fn decision(replay: &Replay, key: &RecipientKey, campaign: &Campaign, now: SystemTime) -> Decision {
    let entry = replay.get(key);
    decide(
        entry.as_ref(),
        InDoubt::default(),
        &campaign.retry,
        campaign.send_before,
        now,
    )
}

/// Counts one person where `decision` puts them; true when they are still to be attempted.
fn tally(report: &mut Report, decision: &Decision, suppressed: bool) -> bool {
    match decision {
        Decision::Done(Status::Sent) => report.sent += 1,
        Decision::Done(_) => report.failed += 1,
        // Whatever else the log says, a suppressed person will not be mailed.
        _ if suppressed => report.suppressed += 1,
        Decision::SkipInDoubt
        | Decision::Send {
            earlier: Some(Status::InDoubt),
            ..
        } => report.in_doubt += 1,
        Decision::GiveUp(_)
        | Decision::NotDue(_)
        | Decision::Send {
            earlier: Some(Status::Deferred),
            ..
        } => report.deferred += 1,
        Decision::Expired => report.expired += 1,
        Decision::Send { .. } => {
            report.pending += 1;
            return true;
        }
    }
    false
}

impl SuppressedBy {
    fn count(&mut self, reason: Reason) {
        *match reason {
            Reason::Unsubscribed => &mut self.unsubscribed,
            Reason::Bounced => &mut self.bounced,
            Reason::Complained => &mut self.complained,
        } += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::sendlog::{Event, Record};
    use crate::suppression::SuppressionList;

    fn campaign() -> Campaign {
        let text = "id = \"t1\"\nsubject = \"s\"\nfrom = \"dons@example.org\"\nlanguage = \"fr\"\n\
                    preheader = \"p\"\nletter = \"l.md\"\nrecipients = \"r.csv\"\n";
        Campaign::parse(Path::new("/nonexistent/c/campaign.toml"), text).unwrap()
    }

    fn reader(csv: &str, suppression: &Arc<SuppressionList>) -> RecipientReader {
        RecipientReader::from_reader(
            Path::new("list.csv"),
            Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
            &[],
        )
        .unwrap()
        .with_suppression(Arc::clone(suppression))
    }

    /// What the counts were before keys were sorted: row by row, in the list's order, with the
    /// reader's own duplicate check.
    fn row_by_row(mut reader: RecipientReader, replay: &Replay, campaign: &Campaign) -> Report {
        let mut report = Report::default();
        let now = SystemTime::now();
        while let Some(row) = reader.next_row().unwrap() {
            report.total += 1;
            let (key, suppressed) = match row {
                Row::Valid(recipient) => (recipient.key, false),
                Row::Suppressed(recipient, reason) => {
                    report.suppressed_by.count(reason);
                    (recipient.key, true)
                }
                Row::Rejected(_) => {
                    report.invalid += 1;
                    continue;
                }
            };
            tally(
                &mut report,
                &decision(replay, &key, campaign, now),
                suppressed,
            );
        }
        report
    }

    #[test]
    fn sorted_keys_count_as_rows_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let unsubscribed = dir.path().join("unsub.txt");
        std::fs::write(
            &unsubscribed,
            "sent-unsub@example.com\nnew-unsub@example.com\n",
        )
        .unwrap();
        let (list, _) = SuppressionList::load(&[(Reason::Unsubscribed, unsubscribed)]).unwrap();
        let suppression = Arc::new(list);

        let mut replay = Replay::default();
        let attempt = |rcpt| Record::new(Event::attempt("L"), rcpt, "<i>");
        let sent = |rcpt| {
            let reply = "250 ok".into();
            Record::new(Event::Sent { reply, via: None }, rcpt, "<i>")
        };
        for rcpt in [
            "sent@example.com",
            "sent-unsub@example.com",
            "gone@example.com",
        ] {
            replay.apply(&attempt(rcpt));
            replay.apply(&sent(rcpt));
        }
        replay.apply(&attempt("failed@example.com"));
        let reply = "550 5.1.1 unknown".into();
        replay.apply(&Record::new(
            Event::Failed { reply },
            "failed@example.com",
            "<i>",
        ));
        replay.apply(&attempt("deferred@example.com"));
        let deferred = Event::Deferred {
            reply: "451".into(),
            retry_at: Some("2099-01-01T00:00:00Z".into()),
        };
        replay.apply(&Record::new(deferred, "deferred@example.com", "<i>"));
        replay.apply(&attempt("doubt@example.com"));
        // Many people, every third sent: keys far apart in the sort, and maps merged.
        let many: Vec<String> = (0..700).map(|i| format!("p{i}@example.com")).collect();
        for rcpt in many.iter().step_by(3) {
            replay.apply(&sent(rcpt));
        }
        replay.finish();

        let mut csv = String::from("email,name\n");
        for rcpt in [
            "Sent@Example.com",
            "failed@example.com",
            "deferred@example.com",
            "doubt@example.com",
            "sent-unsub@example.com",
            "new-unsub@example.com",
            "pending@example.com",
            "not-an-address",
            "SENT@example.com",
            "NEW-unsub@example.com",
            "pending@example.com",
            ",",
        ] {
            csv.push_str(&format!("{rcpt},x\n"));
        }
        csv.push_str("a@example.com,too,many\n");
        for rcpt in &many {
            csv.push_str(&format!("{rcpt},x\n"));
        }
        csv.push_str("p5@example.com,again\n");

        let campaign = campaign();
        let expected = row_by_row(reader(&csv, &suppression), &replay, &campaign);
        let mut report = Report::default();
        let (replay, opens) = read_and_count(
            &mut report,
            reader(&csv, &suppression),
            || Ok((replay, None)),
            &campaign,
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(opens, None);
        let json = |report: &Report| serde_json::to_value(report).unwrap();
        assert_eq!(json(&report), json(&expected));
        // And what that is: the sent one once, and every third of the many; the unsubscribed
        // one mailed before counted sent and on its list; repeats and bad rows rejected.
        let counts = [
            report.sent,
            report.failed,
            report.deferred,
            report.in_doubt,
            report.pending,
            report.suppressed,
            report.invalid,
            report.total,
        ];
        assert_eq!(counts, [2 + 234, 1, 1, 1, 1 + 466, 1, 7, 714]);
        assert_eq!(report.suppressed_by.unsubscribed, 2);
        assert!(replay.get(&RecipientKey::of("gone@example.com")).is_some());
    }
}
