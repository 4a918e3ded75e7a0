//! The send log as a file: one JSON object a line, append-only, synced, locked while open.
//!
//! Records are written into room made ahead at the end of the file and synced a batch at a
//! time (`room`); the file is read back, and what a crash left past its records cut off, when
//! it is opened (`recovery`).
//!
//! Opening never harms a file that is not a send log: one whose first line is no record, or
//! whose header names another campaign, is refused before anything is created or written; the
//! lock lives in a file of its own, the log's whole name and `.lock` (never the log itself,
//! whatever the log is called), and a lock file is only emptied when it holds a lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::lock::take_lock;
use super::{Header, Record, Replay, SendLogError, check_campaign};

mod recovery;
mod room;

use recovery::{precheck, read_records, replay_and_repair};

/// The campaign's log file: one JSON object a line, append-only, fsynced, locked while open.
#[derive(Debug)]
pub struct FileLog {
    path: PathBuf,
    file: File,
    /// Where the records end, and the next batch goes.
    end: u64,
    /// The file's length: from `end` to here it holds zeros, written and synced.
    room: u64,
    /// A write or a sync failed: what it left past `end` is unknown, so nothing more is
    /// written (a shorter batch over it could leave part of it readable as records).
    failed: bool,
    /// The last record is whole but its newline never reached the disk (a crash between the
    /// two): the next write supplies it first, so that records stay one a line.
    missing_newline: bool,
    /// The batch's lines, kept from one batch to the next so a batch allocates nothing.
    lines: Vec<u8>,
    /// Held for the life of the log; the OS releases it if the process dies.
    _lock: File,
}

impl FileLog {
    /// Opens the log at `path` for `campaign`, creating it (naming the campaign) when it is
    /// missing or empty; takes its lock, and replays it. Refuses a file that is not a send log
    /// or names another campaign, and leaves it as it was.
    pub fn open(path: &Path, campaign: &str) -> Result<(FileLog, Replay), SendLogError> {
        let io = |source| SendLogError::Io {
            path: path.to_owned(),
            source,
        };
        // Before the lock file is made beside it: a wrong `--log` leaves no trace.
        precheck(path, campaign)?;
        let lock = take_lock(&lock_path(path), |holder| SendLogError::Locked {
            path: path.to_owned(),
            holder,
        })?;
        let empty = match std::fs::metadata(path) {
            Ok(metadata) => metadata.len() == 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(io(e)),
        };
        if empty {
            create(path, campaign)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let (replay, end, missing_newline) = replay_and_repair(path, &mut file)?;
        check_campaign(&path.display().to_string(), replay.campaign(), campaign)?;
        let log = FileLog {
            path: path.to_owned(),
            file,
            end,
            room: end,
            failed: false,
            missing_newline,
            lines: Vec::new(),
            _lock: lock,
        };
        Ok((log, replay))
    }

    /// Reads the log at `path` for `campaign` without locking it (for `status`, which may run
    /// beside a send). A missing log is an empty one.
    pub fn read(path: &Path, campaign: &str) -> Result<Replay, SendLogError> {
        match File::open(path) {
            Ok(file) => {
                let replay = read_records(path, file)?.replay;
                check_campaign(&path.display().to_string(), replay.campaign(), campaign)?;
                Ok(replay)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Replay::default()),
            Err(source) => Err(SendLogError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The log's records in order, as an open (so repaired, and locked) log holds them: what
    /// an import into a database copies. A record that does not read is `Corrupt`.
    pub fn records(
        &self,
    ) -> Result<impl Iterator<Item = Result<Record, SendLogError>>, SendLogError> {
        let file = self.file.try_clone().map_err(|source| SendLogError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(recovery::records(self.path.clone(), file, self.end))
    }

    /// The log's place as a campaign remembers it: its canonical path (its folder's, when the
    /// log does not exist yet), so that `./x.jsonl` and `/srv/c/x.jsonl` are one log.
    pub fn locate(path: &Path) -> String {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        path.canonicalize()
            .or_else(|_| {
                let name = path.file_name().unwrap_or_default();
                parent.canonicalize().map(|dir| dir.join(name))
            })
            .or_else(|_| std::path::absolute(path))
            .unwrap_or_else(|_| path.to_owned())
            .display()
            .to_string()
    }
}

/// Where the lock of the log at `path` lives: the log's whole file name and `.lock`, so it can
/// never be the log (`x.lock` is locked through `x.lock.lock`).
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    path.with_file_name(name)
}

/// Makes a new log holding only its header, all at once: written beside it, synced, and
/// renamed into place, so that a crash leaves no log or a whole header, never a torn one
/// (which would make the log look like a file that is not a log).
fn create(path: &Path, campaign: &str) -> Result<(), SendLogError> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.new", std::process::id()));
    let staging = path.with_file_name(name);
    let io = |source| SendLogError::Io {
        path: path.to_owned(),
        source,
    };
    let mut line = serde_json::to_vec(&Header::new(campaign)).expect("a header serializes");
    line.push(b'\n');
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&staging)
        .and_then(|mut file| file.write_all(&line).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&staging, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&staging);
        return Err(io(e));
    }
    // The rename is durable once the folder is synced.
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::RecipientKey;
    use crate::error::{Classify, ErrorKind};
    use crate::sendlog::tests::sent;
    use crate::sendlog::{Event, SendLog, Status};

    /// Where `address` stands according to `replay`.
    fn status_of(replay: &Replay, address: &str) -> Status {
        replay.get(&RecipientKey::of(address)).unwrap().status
    }

    // What the tests of `recovery` and `room` write and read too.

    /// `record`'s line as the log holds it.
    pub(super) fn line(record: &Record) -> String {
        serde_json::to_string(record).unwrap() + "\n"
    }

    /// The header of campaign `c`'s log, as a line.
    pub(super) fn header() -> String {
        serde_json::to_string(&Header::new("c")).unwrap() + "\n"
    }

    /// Where each of a@, b@, c@ and d@example.com that `replay` knows stands.
    pub(super) fn people(replay: &Replay) -> Vec<(String, Status)> {
        ["a", "b", "c", "d"]
            .iter()
            .map(|p| format!("{p}@example.com"))
            .filter_map(|rcpt| {
                let entry = replay.get(&RecipientKey::of(&rcpt))?;
                Some((rcpt, entry.status))
            })
            .collect()
    }

    #[test]
    fn file_log_survives_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        {
            let (mut log, _) = FileLog::open(&path, "c").unwrap();
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

        let (mut log, replay) = FileLog::open(&path, "c").unwrap();
        assert_eq!(status_of(&replay, "a@example.com"), Status::Sent);
        assert_eq!(status_of(&replay, "b@example.com"), Status::InDoubt);
        log.append(&[sent("b@example.com")]).unwrap();
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(
            text.starts_with(r#"{"at":""#)
                && text
                    .lines()
                    .next()
                    .unwrap()
                    .ends_with(r#""event":"campaign","campaign":"c"}"#),
            "{text}"
        );
        assert!(
            text.lines()
                .skip(1)
                .all(|l| serde_json::from_str::<Record>(l).is_ok())
        );
    }

    #[test]
    fn damage_in_the_middle_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        let good = serde_json::to_string(&sent("a@example.com")).unwrap();
        std::fs::write(&path, format!("{good}\n{good}\nnot json\n{good}\n")).unwrap();
        let err = FileLog::open(&path, "c").unwrap_err().to_string();
        assert!(err.contains(":3:"), "{err}");
    }

    #[test]
    fn second_open_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        let _first = FileLog::open(&path, "c").unwrap();
        let err = FileLog::open(&path, "c").unwrap_err();
        assert!(matches!(err, SendLogError::Locked { .. }), "{err}");
        assert!(err.to_string().contains(&std::process::id().to_string()));
    }

    #[test]
    fn the_lock_is_never_the_log_whatever_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lock");
        {
            let (mut log, _) = FileLog::open(&path, "c").unwrap();
            log.append(&[sent("a@example.com")]).unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let (_log, replay) = FileLog::open(&path, "c").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(status_of(&replay, "a@example.com"), Status::Sent);
        assert!(dir.path().join("c.lock.lock").exists());
    }

    #[test]
    fn a_lock_path_holding_something_else_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let other = dir.path().join("c.jsonl.lock");
        std::fs::write(&other, "some other log\n").unwrap();
        let err = FileLog::open(&path, "c").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
        assert_eq!(std::fs::read(&other).unwrap(), b"some other log\n");
    }

    #[test]
    fn a_file_that_is_not_a_log_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["Notes du lundi", "Notes\n", "{\"a\":1}\n", "\n"] {
            let path = dir.path().join("notes.txt");
            std::fs::write(&path, text).unwrap();
            let err = FileLog::open(&path, "c").unwrap_err();
            assert!(matches!(err, SendLogError::NotALog { .. }), "{err}");
            assert!(err.to_string().contains("notes.txt"), "{err}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
            assert!(FileLog::read(&path, "c").unwrap_err().kind() == ErrorKind::Invalid);
            assert!(!dir.path().join("notes.txt.lock").exists());
        }
    }

    #[test]
    fn a_whole_last_record_without_its_newline_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        let header = serde_json::to_string(&super::super::Header::new("c")).unwrap();
        let record = serde_json::to_string(&sent("a@example.com")).unwrap();
        std::fs::write(&path, format!("{header}\n{record}")).unwrap();
        assert_eq!(
            status_of(&FileLog::read(&path, "c").unwrap(), "a@example.com"),
            Status::Sent
        );
        let (mut log, replay) = FileLog::open(&path, "c").unwrap();
        assert_eq!(status_of(&replay, "a@example.com"), Status::Sent);
        log.append(&[sent("b@example.com")]).unwrap();
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], [header.as_str(), record.as_str()], "{text}");
        assert_eq!(lines.len(), 3, "{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn a_log_names_its_campaign_and_another_campaign_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sendlog.jsonl");
        drop(FileLog::open(&path, "a").unwrap());
        let before = std::fs::read(&path).unwrap();
        for err in [
            FileLog::open(&path, "b").unwrap_err(),
            FileLog::read(&path, "b").unwrap_err(),
        ] {
            assert!(matches!(err, SendLogError::OtherCampaign { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains(" a") && text.contains(" b"), "{text}");
        }
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // A log from before logs named their campaign is accepted.
        let old = dir.path().join("old.sendlog.jsonl");
        let record = serde_json::to_string(&sent("a@example.com")).unwrap();
        std::fs::write(&old, format!("{record}\n")).unwrap();
        let (_log, replay) = FileLog::open(&old, "b").unwrap();
        assert_eq!(replay.campaign(), None);
        assert_eq!(replay.len(), 1);
    }
}
