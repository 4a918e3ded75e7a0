//! The send log as a file: one JSON object a line, append-only, synced, locked while open.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Record, Replay, SendLog, SendLogError};

/// The campaign's log file: one JSON object a line, append-only, fsynced, locked while open.
#[derive(Debug)]
pub struct FileLog {
    path: PathBuf,
    file: File,
    /// Held for the life of the log; the OS releases it if the process dies.
    _lock: File,
}

impl FileLog {
    /// Opens (or creates) the log at `path`, takes its lock, and replays it.
    pub fn open(path: &Path) -> Result<(FileLog, Replay), SendLogError> {
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
        let log = FileLog {
            path: path.to_owned(),
            file,
            _lock: lock,
        };
        Ok((log, replay))
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
    fn append(&mut self, records: &[Record]) -> Result<(), SendLogError> {
        let mut lines = Vec::with_capacity(records.len() * 200);
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
            })
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
        // Only the very last line can be torn: it has no newline. It was never acknowledged.
        if !complete {
            break;
        }
        replay
            .apply_line(&line)
            .map_err(|message| SendLogError::Corrupt {
                path: path.to_owned(),
                line: number,
                message,
            })?;
        good_len += read as u64;
    }
    replay.finish();
    Ok((replay, good_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::RecipientKey;
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
}
