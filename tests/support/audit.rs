//! A campaign seen from three sides — the send log, `missive status --json`, and the journals of
//! the SMTP servers it talked to — and the checks that the three agree.
//!
//! The tests that break servers or kill missive all end the same way: every recipient in exactly
//! one state, `sent` exactly the people a server accepted, permanent failures never tried again,
//! and a second copy only where the first attempt was in doubt, with the same Message-ID.

use std::collections::{BTreeMap, BTreeSet};

use mail_parser::MessageParser;

use super::harness::Fixture;
use super::smtp_server::{Fate, Journal};

/// The counts `missive status --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Counts {
    pub sent: u64,
    pub failed: u64,
    pub deferred: u64,
    pub in_doubt: u64,
    pub pending: u64,
    pub suppressed: u64,
    pub invalid: u64,
    pub total: u64,
}

/// One line of the send log.
#[derive(Debug, Clone)]
pub struct Entry {
    pub event: String,
    pub message_id: String,
    pub reply: String,
    pub retry_at: Option<String>,
}

/// A message a server received whole.
#[derive(Debug, Clone)]
pub struct Copy {
    pub rcpt_to: Vec<String>,
    /// Without angle brackets.
    pub message_id: String,
    /// The address of the `To` header.
    pub to: String,
    pub fate: Fate,
    /// What the server's 250 named it (`queued as …`).
    pub queue_id: String,
}

/// Where a recipient stands, by the log alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Sent,
    Failed,
    Deferred,
    InDoubt,
}

/// What the log, `status` and the servers say.
pub struct Audit {
    pub counts: Counts,
    /// Each recipient's records, in order.
    pub log: BTreeMap<String, Vec<Entry>>,
    /// Each recipient's copies, over every server, in order of arrival at each.
    pub copies: BTreeMap<String, Vec<Copy>>,
    /// How many `RCPT TO` named each address, over every server.
    pub rcpt_commands: BTreeMap<String, usize>,
}

impl Audit {
    pub fn take(fixture: &Fixture, journals: &[Journal]) -> Audit {
        Audit::of(fixture.status(), fixture.log_records(), journals)
    }

    /// The audit of what `status --json` printed (`status`), the log's records as the file
    /// log writes them (`records`, from a file or a database), and the servers' journals.
    pub fn of(
        status: serde_json::Value,
        records: Vec<serde_json::Value>,
        journals: &[Journal],
    ) -> Audit {
        let counts = serde_json::from_value(status).expect("status --json has the counts");
        let mut log: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for record in records {
            let text = |key: &str| record[key].as_str().unwrap_or_default().to_owned();
            log.entry(text("rcpt")).or_default().push(Entry {
                event: text("event"),
                message_id: text("message_id"),
                reply: text("reply"),
                retry_at: record["retry_at"].as_str().map(str::to_owned),
            });
        }
        let mut copies: BTreeMap<String, Vec<Copy>> = BTreeMap::new();
        let mut rcpt_commands: BTreeMap<String, usize> = BTreeMap::new();
        for journal in journals {
            for (index, received) in journal.received.iter().enumerate() {
                let message = MessageParser::default()
                    .parse(&received.data)
                    .expect("a parsable message");
                let copy = Copy {
                    rcpt_to: received.rcpt_to.clone(),
                    message_id: message.message_id().unwrap_or_default().to_owned(),
                    to: message
                        .to()
                        .and_then(|to| to.first())
                        .and_then(|to| to.address())
                        .unwrap_or_default()
                        .to_owned(),
                    fate: received.fate,
                    // As the test server words its 250 (`smtp_server/session.rs`).
                    queue_id: format!("T{}N{index}", received.connection_id),
                };
                copies
                    .entry(received.rcpt_to[0].clone())
                    .or_default()
                    .push(copy);
            }
            for address in &journal.rcpt_commands {
                *rcpt_commands.entry(address.clone()).or_default() += 1;
            }
        }
        Audit {
            counts,
            log,
            copies,
            rcpt_commands,
        }
    }

    /// The recipient's state by the log: the first final record wins; otherwise the last
    /// record, where a `withdrawn` undoes the attempt before it (attempts are written while a
    /// message waits its turn, and withdrawn when the run stops first).
    pub fn state(&self, rcpt: &str) -> Option<State> {
        let entries = self.log.get(rcpt)?;
        let mut state = None;
        let mut before_attempts = Vec::new();
        for entry in entries {
            state = match entry.event.as_str() {
                "sent" => return Some(State::Sent),
                "failed" => return Some(State::Failed),
                "deferred" => Some(State::Deferred),
                "attempt" => {
                    before_attempts.push(state);
                    Some(State::InDoubt)
                }
                "withdrawn" => before_attempts
                    .pop()
                    .expect("a withdrawn record follows an attempt"),
                other => panic!("the audit does not know the log event {other:?}"),
            };
        }
        state
    }

    pub fn with_state(&self, wanted: State) -> BTreeSet<String> {
        self.log
            .keys()
            .filter(|rcpt| self.state(rcpt) == Some(wanted))
            .cloned()
            .collect()
    }

    /// Recipients a server accepted at least once.
    pub fn accepted(&self) -> BTreeSet<String> {
        self.copies
            .iter()
            .filter(|(_, copies)| copies.iter().any(|c| c.fate == Fate::Accepted))
            .map(|(rcpt, _)| rcpt.clone())
            .collect()
    }

    pub fn accepted_count(&self, rcpt: &str) -> usize {
        self.copies
            .get(rcpt)
            .map_or(0, |c| c.iter().filter(|c| c.fate == Fate::Accepted).count())
    }

    /// Accepted copies beyond the first, over everyone.
    pub fn duplicates(&self) -> usize {
        self.copies
            .keys()
            .map(|rcpt| self.accepted_count(rcpt).saturating_sub(1))
            .sum()
    }

    /// Attempts made and not withdrawn.
    pub fn attempts(&self, rcpt: &str) -> usize {
        self.events(rcpt, "attempt") - self.events(rcpt, "withdrawn")
    }

    pub fn events(&self, rcpt: &str, event: &str) -> usize {
        self.log
            .get(rcpt)
            .map_or(0, |e| e.iter().filter(|e| e.event == event).count())
    }

    /// Attempts that had no outcome before the next attempt or the end of the log.
    pub fn in_doubt_attempts(&self, rcpt: &str) -> usize {
        let Some(entries) = self.log.get(rcpt) else {
            return 0;
        };
        entries
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                e.event == "attempt"
                    && entries
                        .get(i + 1)
                        .is_none_or(|next| next.event == "attempt")
            })
            .count()
    }

    /// True at any moment, even right after a kill: counts add up and match the log, nobody has
    /// two final outcomes, every copy a server received is the one the log names, and the log
    /// calls sent only what a server accepted.
    pub fn assert_consistent(&self) {
        let c = &self.counts;
        assert_eq!(
            c.sent + c.failed + c.deferred + c.in_doubt + c.pending + c.suppressed + c.invalid,
            c.total,
            "every row is in exactly one state: {c:?}"
        );
        let sent = self.with_state(State::Sent);
        assert_eq!(c.sent, sent.len() as u64, "status and log agree on sent");
        assert_eq!(
            c.failed,
            self.with_state(State::Failed).len() as u64,
            "status and log agree on failed"
        );
        assert_eq!(c.deferred, self.with_state(State::Deferred).len() as u64);
        assert_eq!(c.in_doubt, self.with_state(State::InDoubt).len() as u64);
        for (rcpt, entries) in &self.log {
            let finals = entries
                .iter()
                .filter(|e| e.event == "sent" || e.event == "failed")
                .count();
            assert!(
                finals <= 1,
                "{rcpt} has {finals} final outcomes: {entries:?}"
            );
            let ids: BTreeSet<&str> = entries.iter().map(|e| e.message_id.as_str()).collect();
            assert_eq!(
                ids.len(),
                1,
                "{rcpt} has one Message-ID in the log: {ids:?}"
            );
        }
        for (rcpt, copies) in &self.copies {
            let logged = self.log.get(rcpt).map(|e| e[0].message_id.as_str());
            for copy in copies {
                assert_eq!(
                    copy.rcpt_to,
                    std::slice::from_ref(rcpt),
                    "one recipient a message"
                );
                assert_eq!(&copy.to, rcpt, "To matches RCPT TO");
                assert_eq!(
                    logged.map(|id| id.trim_matches(['<', '>'])),
                    Some(copy.message_id.as_str()),
                    "a copy to {rcpt} ({:?}) carries the Message-ID of its attempts in the log",
                    copy.fate
                );
            }
        }
        // Each `sent` keeps the reply to that very message: a client that read a reply meant
        // for another command would log someone else's queue id (or a 354).
        for (rcpt, entries) in &self.log {
            for entry in entries.iter().filter(|e| e.event == "sent") {
                let ours = self.copies.get(rcpt).into_iter().flatten().any(|copy| {
                    copy.fate == Fate::Accepted
                        && entry.reply == format!("250 2.0.0 Ok: queued as {}", copy.queue_id)
                });
                assert!(
                    ours,
                    "{rcpt} logged sent with {:?}, not the reply to its message: {:?}",
                    entry.reply,
                    self.copies.get(rcpt)
                );
            }
        }
        let accepted = self.accepted();
        let never_accepted: Vec<_> = sent.difference(&accepted).collect();
        assert!(
            never_accepted.is_empty(),
            "logged as sent but no server accepted them: {never_accepted:?}"
        );
        for rcpt in self.with_state(State::Failed) {
            assert_eq!(
                self.accepted_count(&rcpt),
                0,
                "{rcpt} failed, yet was accepted"
            );
        }
        for rcpt in self.copies.keys() {
            let extra = self.accepted_count(rcpt).saturating_sub(1);
            assert!(
                extra <= self.in_doubt_attempts(rcpt),
                "{rcpt} accepted {} times, but only {} attempt(s) were in doubt: {:?}",
                extra + 1,
                self.in_doubt_attempts(rcpt),
                self.log.get(rcpt)
            );
        }
    }

    /// The campaign is over: every one of `valid` is sent, except `failed`, which failed for
    /// good and were never attempted again; `sent` is exactly who the servers accepted.
    pub fn assert_settled(
        &self,
        valid: &BTreeSet<String>,
        failed: &BTreeSet<String>,
        invalid: u64,
    ) {
        self.assert_consistent();
        let c = &self.counts;
        assert_eq!(
            (c.pending, c.in_doubt, c.deferred),
            (0, 0, 0),
            "nothing left to do: {c:?}"
        );
        assert_eq!(
            (c.total, c.invalid),
            (valid.len() as u64 + invalid, invalid),
            "{c:?}"
        );
        assert_eq!(&self.with_state(State::Failed), failed, "failed for good");
        let sent: BTreeSet<String> = valid.difference(failed).cloned().collect();
        assert_eq!(self.with_state(State::Sent), sent, "sent: everyone else");
        assert_eq!(
            self.accepted(),
            sent,
            "sent is exactly who the servers accepted"
        );
        assert_eq!(c.sent, sent.len() as u64);
        for rcpt in failed {
            let entries = &self.log[rcpt];
            assert_eq!(
                entries.last().map(|e| e.event.as_str()),
                Some("failed"),
                "nothing after a final failure: {entries:?}"
            );
            assert!(
                self.rcpt_commands.get(rcpt).copied().unwrap_or(0) <= self.attempts(rcpt),
                "{rcpt}: more RCPT TO than attempts in the log"
            );
        }
    }

    /// Nobody was accepted twice.
    pub fn assert_accepted_at_most_once(&self) {
        let twice: Vec<_> = self
            .copies
            .keys()
            .filter(|rcpt| self.accepted_count(rcpt) > 1)
            .collect();
        assert!(twice.is_empty(), "accepted more than once: {twice:?}");
    }
}
