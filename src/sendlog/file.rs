//! The send log as a file: one JSON object a line, append-only, synced, locked while open.
//!
//! Opening never harms a file that is not a send log: one whose first line is no record is
//! refused before anything is created or written; the
//! lock lives in a file of its own, the log's whole name and `.lock` (never the log itself,
//! whatever the log is called), and a lock file is only emptied when it holds a lock.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::lock::take_lock;
use super::{Record, Replay, SendLog, SendLogError};

/// The campaign's log file: one JSON object a line, append-only, fsynced, locked while open.
#[derive(Debug)]
pub struct FileLog {
    path: PathBuf,
    file: File,
    /// The last record is whole but its newline never reached the disk (a crash between the
    /// two): the next write supplies it first, so that records stay one a line.
    missing_newline: bool,
    /// Held for the life of the log; the OS releases it if the process dies.
    _lock: File,
}

impl FileLog {
    /// Opens (or creates) the log at `path`, takes its lock, and replays it. Refuses a file
    /// that is not a send log, and leaves it as it was.
    pub fn open(path: &Path) -> Result<(FileLog, Replay), SendLogError> {
        let io = |source| SendLogError::Io {
            path: path.to_owned(),
            source,
        };
        // Before the lock file is made beside it: a wrong `--log` leaves no trace.
        precheck(path)?;
        let lock = take_lock(&lock_path(path), |holder| SendLogError::Locked {
            path: path.to_owned(),
            holder,
        })?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let (replay, missing_newline) = replay_and_repair(path, &mut file)?;
        let log = FileLog {
            path: path.to_owned(),
            file,
            missing_newline,
            _lock: lock,
        };
        Ok((log, replay))
    }

    /// Reads the log at `path` without locking it (for `status`, which may run beside a send).
    pub fn read(path: &Path) -> Result<Replay, SendLogError> {
        match File::open(path) {
            Ok(file) => {
                let (replay, _, _) = read_records(path, file)?;
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
    fn append(&mut self, records: &[Record]) -> Result<(), SendLogError> {
        let mut lines = Vec::with_capacity(records.len() * 200 + 1);
        if self.missing_newline {
            lines.push(b'\n');
        }
        for record in records {
            serde_json::to_writer(&mut lines, record).expect("a record always serializes");
            lines.push(b'\n');
        }
        // One write and one sync for the whole batch: the group commit.
        self.file
            .write_all(&lines)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| SendLogError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.missing_newline = false;
        Ok(())
    }
}

/// Where the lock of the log at `path` lives: the log's whole file name and `.lock`, so it can
/// never be the log (`x.lock` is locked through `x.lock.lock`).
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    path.with_file_name(name)
}

/// Refuses, before anything is made beside it, an existing file whose first line is not a
/// record. (The replay under the lock checks all of it again; this only spares a wrong file a
/// lock file next to it.)
fn precheck(path: &Path) -> Result<(), SendLogError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SendLogError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    // A log's first line is short; a longer one is no log's, and need not be read whole.
    let mut first = Vec::new();
    BufReader::new(file)
        .take(1 << 20)
        .read_until(b'\n', &mut first)
        .map_err(|source| SendLogError::Io {
            path: path.to_owned(),
            source,
        })?;
    if first.is_empty() {
        return Ok(());
    }
    Replay::default()
        .apply_line(&first)
        .map_err(|message| not_a_log(path, &message))
}

fn not_a_log(path: &Path, message: &str) -> SendLogError {
    SendLogError::NotALog {
        path: path.to_owned(),
        problem: format!(
            "not a send log: its first line is not a log record ({message}); missive leaves \
             it as it is. Check --log: it must name this campaign's send log, or a file that \
             does not exist yet"
        ),
    }
}

/// Replays the file, then cuts off a torn last line (a write the crash interrupted: it was never
/// acknowledged, so dropping it loses nothing), so that new records start on a line of their own.
/// Also says whether the last record lacks its newline.
fn replay_and_repair(path: &Path, file: &mut File) -> Result<(Replay, bool), SendLogError> {
    let io = |source| SendLogError::Io {
        path: path.to_owned(),
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let (replay, good_len, missing_newline) = read_records(path, file.try_clone().map_err(io)?)?;
    let len = file.metadata().map_err(io)?.len();
    if good_len < len {
        tracing::warn!(log = %path.display(), bytes = len - good_len, "dropping a torn last line left by a crash");
        file.set_len(good_len)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
    }
    Ok((replay, missing_newline))
}

/// Reads every record; returns the state, the length of the intact part of the file, and
/// whether its last record lacks its newline.
///
/// A line is torn when it does not parse: only the last one can be (it has no newline, since
/// records are written a line at a time and synced before they count). A last line that parses
/// is whole, its newline lost: it is kept. The first line must be a record, torn or not:
/// otherwise the file is not a send log.
fn read_records(path: &Path, file: File) -> Result<(Replay, u64, bool), SendLogError> {
    let mut reader = BufReader::new(file);
    let mut replay = Replay::default();
    let mut good_len = 0u64;
    let mut missing_newline = false;
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
        match replay.apply_line(&line) {
            Ok(()) => {
                good_len += read as u64;
                missing_newline = !complete;
            }
            Err(message) if number == 1 => return Err(not_a_log(path, &message)),
            // Torn: never acknowledged.
            Err(_) if !complete => break,
            Err(message) => {
                return Err(SendLogError::Corrupt {
                    path: path.to_owned(),
                    line: number,
                    message,
                });
            }
        }
    }
    replay.finish();
    Ok((replay, good_len, missing_newline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipients::RecipientKey;
    use crate::sendlog::tests::sent;
    use crate::sendlog::{Event, Status};

    #[test]
    fn file_log_survives_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        {
            let (mut log, _) = FileLog::open(&path).unwrap();
            let attempt = |rcpt| Record::new(Event::attempt("L"), rcpt, "<i>");
            log.append(&[attempt("a@example.com"), sent("a@example.com")])
                .unwrap();
            log.append(&[attempt("b@example.com")]).unwrap();
        }
        // A crash in the middle of writing a line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"at":"2026-01-01T00:00:00Z","event":"se"#)
            .unwrap();
        drop(file);

        let (mut log, replay) = FileLog::open(&path).unwrap();
        let status = |a| replay.get(&RecipientKey::of(a)).unwrap().status;
        assert_eq!(status("a@example.com"), Status::Sent);
        assert_eq!(status("b@example.com"), Status::InDoubt);
        log.append(&[sent("b@example.com")]).unwrap();
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

    #[test]
    fn the_lock_is_never_the_log_whatever_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lock");
        {
            let (mut log, _) = FileLog::open(&path).unwrap();
            log.append(&[sent("a@example.com")]).unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let (_log, replay) = FileLog::open(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(
            replay
                .get(&RecipientKey::of("a@example.com"))
                .unwrap()
                .status,
            Status::Sent
        );
        assert!(dir.path().join("c.lock.lock").exists());
    }

    #[test]
    fn a_lock_path_holding_something_else_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let other = dir.path().join("c.jsonl.lock");
        std::fs::write(&other, "some other log\n").unwrap();
        let err = FileLog::open(&path).unwrap_err();
        assert!(err.refuses_the_campaign(), "{err}");
        assert_eq!(std::fs::read(&other).unwrap(), b"some other log\n");
    }

    #[test]
    fn a_file_that_is_not_a_log_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["Notes du lundi", "Notes\n", "{\"a\":1}\n", "\n"] {
            let path = dir.path().join("notes.txt");
            std::fs::write(&path, text).unwrap();
            let err = FileLog::open(&path).unwrap_err();
            assert!(matches!(err, SendLogError::NotALog { .. }), "{err}");
            assert!(err.to_string().contains("notes.txt"), "{err}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
            assert!(FileLog::read(&path).unwrap_err().refuses_the_campaign());
            assert!(!dir.path().join("notes.txt.lock").exists());
        }
    }

    #[test]
    fn a_whole_last_record_without_its_newline_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        let header =
            serde_json::to_string(&Record::new(Event::attempt("L"), "a@example.com", "<i>"))
                .unwrap();
        let record = serde_json::to_string(&sent("a@example.com")).unwrap();
        std::fs::write(&path, format!("{header}\n{record}")).unwrap();
        assert_eq!(
            FileLog::read(&path)
                .unwrap()
                .get(&RecipientKey::of("a@example.com"))
                .unwrap()
                .status,
            Status::Sent
        );
        let (mut log, replay) = FileLog::open(&path).unwrap();
        assert_eq!(
            replay
                .get(&RecipientKey::of("a@example.com"))
                .unwrap()
                .status,
            Status::Sent
        );
        log.append(&[sent("b@example.com")]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], [header.as_str(), record.as_str()], "{text}");
        assert_eq!(lines.len(), 3, "{text}");
        assert!(text.ends_with('\n'));
    }
}
