//! The send log: the durable record of every attempt and outcome, and its replay.
//!
//! It is what makes "never twice, never lost" true across crashes, `kill -9` and cron runs:
//! before a message is handed to the server an `attempt` record is written, and after the
//! server's reply its outcome (`sent`, `deferred`, `failed`). On start the log is replayed:
//! sent and failed people are skipped, and an attempt with no outcome is *in doubt* (the process
//! died while the server had the message).
//!
//! The engine sees only the [`SendLog`] trait: a JSON-lines file today ([`FileLog`]), memory for
//! dry runs ([`MemoryLog`]), and tomorrow a table shared by several workers.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::recipients::RecipientKey;

/// The send log could not be read, written or locked.
#[derive(Debug, thiserror::Error)]
pub enum SendLogError {
    #[error("send log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("send log {path}:{line}: not a log record ({message}); the log was edited or damaged")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// Another `send` holds the campaign: two runs would send twice.
    #[error("send log {path} is locked by another missive run{holder}; try again when it ends")]
    Locked { path: PathBuf, holder: String },
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC, for people reading the log.
    pub at: String,
    #[serde(flatten)]
    pub event: Event,
    /// The address as sent to, lower-cased.
    pub rcpt: String,
    pub message_id: String,
}

/// What happened, as the `event` key of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The message is about to be handed to the server.
    Attempt,
    /// The server accepted it (its reply, with the queue id).
    Sent { reply: String },
    /// A transient refusal (4xx): try again later.
    Deferred { reply: String },
    /// A permanent refusal (5xx): never retried.
    Failed { reply: String },
}

impl Record {
    pub fn new(event: Event, rcpt: &str, message_id: &str) -> Record {
        Record {
            at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            event,
            rcpt: rcpt.to_lowercase(),
            message_id: message_id.to_owned(),
        }
    }
}

/// Where a recipient stands according to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Sent,
    Failed,
    Deferred,
    /// An attempt with no outcome: the server may or may not have the message.
    InDoubt,
}

impl Status {
    /// Sent and failed are final: nothing more will be tried.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Sent | Status::Failed)
    }
}

/// The log replayed: each recipient's latest status and how often it was attempted.
#[derive(Debug, Default, Clone)]
pub struct Replay {
    entries: HashMap<RecipientKey, Entry>,
}

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub status: Status,
    pub attempts: u32,
}

impl Replay {
    /// Folds one record into the state.
    pub fn apply(&mut self, record: &Record) {
        let key = RecipientKey::of(&record.rcpt);
        let entry = self.entries.entry(key).or_insert(Entry {
            status: Status::InDoubt,
            attempts: 0,
        });
        // A final outcome is final: a later record (an in-doubt resend) cannot undo "sent".
        if entry.status.is_final() {
            return;
        }
        entry.status = match &record.event {
            Event::Attempt => {
                entry.attempts += 1;
                Status::InDoubt
            }
            Event::Sent { .. } => Status::Sent,
            Event::Deferred { .. } => Status::Deferred,
            Event::Failed { .. } => Status::Failed,
        };
    }

    pub fn get(&self, key: &RecipientKey) -> Option<Entry> {
        self.entries.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A durable record of attempts and outcomes.
pub trait SendLog: Send {
    /// The state the log held when it was opened, plus everything appended since.
    fn replay(&self) -> &Replay;

    /// Appends a record. Returns once it is durable: a crash after this call cannot lose it.
    fn append(&mut self, record: Record) -> Result<(), SendLogError>;
}

/// Keeps records in memory only: for dry runs, which must never touch the real log.
#[derive(Debug, Default)]
pub struct MemoryLog {
    replay: Replay,
    pub records: Vec<Record>,
}

impl SendLog for MemoryLog {
    fn replay(&self) -> &Replay {
        &self.replay
    }

    fn append(&mut self, record: Record) -> Result<(), SendLogError> {
        self.replay.apply(&record);
        self.records.push(record);
        Ok(())
    }
}

/// The campaign's log file: one JSON object a line, append-only, fsynced, locked while open.
#[derive(Debug)]
pub struct FileLog {
    path: PathBuf,
    file: File,
    replay: Replay,
    /// Held for the life of the log; the OS releases it if the process dies.
    _lock: File,
}

impl FileLog {
    /// Opens (or creates) the log at `path`, takes its lock, and replays it.
    pub fn open(path: &Path) -> Result<FileLog, SendLogError> {
        let io = |source| SendLogError::Io {
            path: path.to_owned(),
            source,
        };
        let lock = lock(path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let replay = replay_and_repair(path, &mut file)?;
        Ok(FileLog {
            path: path.to_owned(),
            file,
            replay,
            _lock: lock,
        })
    }

    /// Reads the log at `path` without locking it (for `status`, which may run beside a send).
    pub fn read(path: &Path) -> Result<Replay, SendLogError> {
        match File::open(path) {
            Ok(file) => {
                let (replay, _) = read_records(path, file)?;
                Ok(replay)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Replay::default()),
            Err(source) => Err(SendLogError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

impl SendLog for FileLog {
    fn replay(&self) -> &Replay {
        &self.replay
    }

    fn append(&mut self, record: Record) -> Result<(), SendLogError> {
        let mut line = serde_json::to_vec(&record).expect("a record always serializes");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| SendLogError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.replay.apply(&record);
        Ok(())
    }
}

/// Takes the lock file beside the log (`<log>.lock`) and writes our pid into it.
fn lock(path: &Path) -> Result<File, SendLogError> {
    let lock_path = path.with_extension("lock");
    let io = |source| SendLogError::Io {
        path: lock_path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path)
                .ok()
                .map(|pid| pid.trim().to_owned())
                .filter(|pid| !pid.is_empty())
                .map_or_else(String::new, |pid| format!(" (process {pid})"));
            return Err(SendLogError::Locked {
                path: path.to_owned(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0)
        .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .map_err(io)?;
    Ok(file)
}

/// Replays the file, then cuts off a torn last line (a write the crash interrupted: it was never
/// acknowledged, so dropping it loses nothing), so that new records start on a line of their own.
fn replay_and_repair(path: &Path, file: &mut File) -> Result<Replay, SendLogError> {
    let io = |source| SendLogError::Io {
        path: path.to_owned(),
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let (replay, good_len) = read_records(path, file.try_clone().map_err(io)?)?;
    let len = file.metadata().map_err(io)?.len();
    if good_len < len {
        tracing::warn!(log = %path.display(), bytes = len - good_len, "dropping a torn last line left by a crash");
        file.set_len(good_len)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
    }
    Ok(replay)
}

/// Reads every record; returns the state and the length of the intact part of the file.
fn read_records(path: &Path, file: File) -> Result<(Replay, u64), SendLogError> {
    let mut reader = BufReader::new(file);
    let mut replay = Replay::default();
    let mut good_len = 0u64;
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| SendLogError::Io {
                path: path.to_owned(),
                source,
            })?;
        if read == 0 {
            break;
        }
        number += 1;
        let complete = line.ends_with(b"\n");
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) if complete => {
                replay.apply(&record);
                good_len += read as u64;
            }
            // Only the very last line can be torn: it has no newline.
            _ if !complete => break,
            Ok(_) => unreachable!("complete is true here"),
            Err(e) => {
                return Err(SendLogError::Corrupt {
                    path: path.to_owned(),
                    line: number,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok((replay, good_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(rcpt: &str) -> Record {
        Record::new(
            Event::Sent {
                reply: "250 ok".into(),
            },
            rcpt,
            "<id@x>",
        )
    }

    #[test]
    fn replay_tracks_latest_status_and_keeps_final_outcomes() {
        let mut replay = Replay::default();
        let key = RecipientKey::of("a@example.com");
        replay.apply(&Record::new(Event::Attempt, "A@example.com", "<i>"));
        assert_eq!(replay.get(&key).unwrap().status, Status::InDoubt);
        replay.apply(&Record::new(
            Event::Deferred {
                reply: "451".into(),
            },
            "a@example.com",
            "<i>",
        ));
        assert_eq!(replay.get(&key).unwrap().status, Status::Deferred);
        replay.apply(&Record::new(Event::Attempt, "a@example.com", "<i>"));
        replay.apply(&sent("a@example.com"));
        replay.apply(&Record::new(Event::Attempt, "a@example.com", "<i>"));
        let entry = replay.get(&key).unwrap();
        assert_eq!((entry.status, entry.attempts), (Status::Sent, 2));
    }

    #[test]
    fn file_log_survives_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        {
            let mut log = FileLog::open(&path).unwrap();
            log.append(Record::new(Event::Attempt, "a@example.com", "<i>"))
                .unwrap();
            log.append(sent("a@example.com")).unwrap();
            log.append(Record::new(Event::Attempt, "b@example.com", "<j>"))
                .unwrap();
        }
        // A crash in the middle of writing a line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"at":"2026-01-01T00:00:00Z","event":"se"#)
            .unwrap();
        drop(file);

        let mut log = FileLog::open(&path).unwrap();
        let key = |a| RecipientKey::of(a);
        assert_eq!(
            log.replay().get(&key("a@example.com")).unwrap().status,
            Status::Sent
        );
        assert_eq!(
            log.replay().get(&key("b@example.com")).unwrap().status,
            Status::InDoubt
        );
        log.append(sent("b@example.com")).unwrap();
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<Record>(l).is_ok())
        );
    }

    #[test]
    fn damage_in_the_middle_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        let good = serde_json::to_string(&sent("a@example.com")).unwrap();
        std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
        let err = FileLog::open(&path).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
    }

    #[test]
    fn second_open_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        let _first = FileLog::open(&path).unwrap();
        let err = FileLog::open(&path).unwrap_err();
        assert!(matches!(err, SendLogError::Locked { .. }), "{err}");
        assert!(err.to_string().contains(&std::process::id().to_string()));
    }
}
