//! Reading a log file back: every record replayed, up to the first NUL byte (the room made
//! ahead for records to come), a torn last line (a write a crash cut short, never acknowledged)
//! and the room a crash left cut off, and a file that is not a send log refused before anything
//! is made beside it or written to it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::sendlog::{Header, Record, Replay, SendLogError, check_campaign};

/// Refuses, before anything is made beside it, an existing file whose first line is neither a
/// header nor a record, or whose header names another campaign. (The replay under the lock
/// checks all of it again; this only spares a wrong file a lock file next to it.)
pub(super) fn precheck(path: &Path, campaign: &str) -> Result<(), SendLogError> {
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
    let mut replay = Replay::default();
    replay
        .apply_first_line(&first)
        .map_err(|message| not_a_log(path, &message))?;
    // Only another campaign's header is refused here: a log without one is warned of once, by
    // the replay that follows.
    match replay.campaign() {
        Some(named) => check_campaign(&path.display().to_string(), Some(named), campaign),
        None => Ok(()),
    }
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

/// Replays the file, then cuts off what follows its records: a torn last line (a write the
/// crash interrupted: it was never acknowledged, so dropping it loses nothing) and the room a
/// run left when it did not close the log (whatever a crash left in it), so that new records
/// start on a line of their own and nothing of an old batch lies past a new, shorter one.
/// Returns the replay, where the records end, and whether the last record lacks its newline.
pub(super) fn replay_and_repair(
    path: &Path,
    file: &mut File,
) -> Result<(Replay, u64, bool), SendLogError> {
    let io = |source| SendLogError::Io {
        path: path.to_owned(),
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let read = read_records(path, file.try_clone().map_err(io)?)?;
    let len = file.metadata().map_err(io)?.len();
    if read.good_len < len {
        if read.torn > 0 {
            tracing::warn!(log = %path.display(), bytes = read.torn, "dropping a torn last line left by a crash");
        }
        file.set_len(read.good_len)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
    }
    Ok((read.replay, read.good_len, read.missing_newline))
}

/// A log file read back.
pub(super) struct Contents {
    pub(super) replay: Replay,
    /// The length of its intact records.
    pub(super) good_len: u64,
    /// Its last record is whole but lacks its newline.
    pub(super) missing_newline: bool,
    /// The bytes of a torn last line, between the records and the first NUL or the end.
    pub(super) torn: u64,
}

/// Reads every record, up to the first NUL byte or the end of the file.
///
/// A line is torn when it does not parse: only the last one can be (it has no newline, since
/// records are written a batch at a time and synced before they count). A last line that
/// parses is whole, its newline lost: it is kept. The first line must be a header or a record,
/// torn or not: otherwise the file is not a send log.
///
/// Records never hold a NUL (JSON writes it `\u0000`), and what is synced is never zeros: the
/// first NUL is past every acknowledged record. Past it is room made for records to come, or
/// what a crash left of a batch never acknowledged, which is not read.
pub(super) fn read_records(path: &Path, file: File) -> Result<Contents, SendLogError> {
    let mut reader = BufReader::new(file);
    let mut replay = Replay::default();
    let mut good_len = 0u64;
    let mut missing_newline = false;
    let mut torn = 0;
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
        let nul = line.contains(&0);
        if nul {
            let at = line.iter().position(|&b| b == 0).unwrap_or(line.len());
            line.truncate(at);
        }
        // The end: the file's, or the first NUL at the start of a line (but a first line that
        // is a NUL is no log's).
        if read == 0 || (nul && line.is_empty() && number > 0) {
            break;
        }
        number += 1;
        let complete = line.ends_with(b"\n");
        let parsed = if number == 1 {
            replay.apply_first_line(&line)
        } else {
            replay.apply_line(&line)
        };
        match parsed {
            Ok(()) => {
                good_len += line.len() as u64;
                missing_newline = !complete;
            }
            Err(message) if number == 1 => return Err(not_a_log(path, &message)),
            // Torn: never acknowledged.
            Err(_) if !complete => {
                torn = line.len() as u64;
                break;
            }
            Err(message) => {
                return Err(SendLogError::Corrupt {
                    path: path.to_owned(),
                    line: number,
                    message,
                });
            }
        }
        if nul {
            break;
        }
    }
    replay.finish();
    Ok(Contents {
        replay,
        good_len,
        missing_newline,
        torn,
    })
}

/// The records of the file's first `end` bytes (its intact ones), in order, skipping the
/// header; read from the start whatever `file`'s position.
pub(super) fn records(
    path: PathBuf,
    file: File,
    end: u64,
) -> impl Iterator<Item = Result<Record, SendLogError>> {
    let mut lines = BufReader::new(FileAt(file, 0).take(end))
        .split(b'\n')
        .enumerate();
    std::iter::from_fn(move || {
        loop {
            let (number, line) = lines.next()?;
            let line = match line {
                Ok(line) => line,
                Err(source) => {
                    let path = path.clone();
                    return Some(Err(SendLogError::Io { path, source }));
                }
            };
            if number == 0 && serde_json::from_slice::<Header>(&line).is_ok() {
                continue;
            }
            return Some(serde_json::from_slice::<Record>(&line).map_err(|e| {
                SendLogError::Corrupt {
                    path: path.clone(),
                    line: number + 1,
                    message: e.to_string(),
                }
            }));
        }
    })
}

/// Reads `file` from an offset of its own, whatever its shared position.
struct FileAt(File, u64);

impl Read for FileAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let read = self.0.read_at(buf, self.1)?;
        self.1 += read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::*;
    use crate::sendlog::file::FileLog;
    use crate::sendlog::file::tests::{header, line, people};
    use crate::sendlog::tests::sent;
    use crate::sendlog::{Event, Record, SendLog, Status};

    #[test]
    fn an_import_reads_every_record_in_order_and_nothing_a_crash_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        let written = vec![
            Record::new(Event::attempt("L"), "a@example.com", "<a>"),
            sent("a@example.com"),
            Record::new(Event::attempt("L"), "b@example.com", "<b>"),
            Record::new(
                Event::Deferred {
                    reply: "451 later".into(),
                    retry_at: Some("2026-12-01T10:00:00Z".into()),
                },
                "b@example.com",
                "<b>",
            ),
            Record::new(Event::attempt("L"), "c@example.com", "<c>"),
            Record::new(Event::Withdrawn, "c@example.com", "<c>"),
            Record::new(Event::attempt("L"), "d@example.com", "<d>"),
        ];
        {
            let (mut log, _) = FileLog::open(&path, "c").unwrap();
            log.append(&written).unwrap();
        }
        // What a crash leaves: room made past the records, and part of a batch in it.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"\0\0\0\0{\"at\":\"2026").unwrap();
        drop(file);
        let (log, _) = FileLog::open(&path, "c").unwrap();
        let read: Vec<Record> = log.records().unwrap().map(Result::unwrap).collect();
        assert_eq!(read, written);
    }

    #[test]
    fn the_records_end_at_the_first_nul() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        let (a, b) = (line(&sent("a@example.com")), line(&sent("b@example.com")));
        let records = format!("{}{a}", header());
        let try_read = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            read_records(&path, File::open(&path).unwrap())
        };
        let read = |bytes: &[u8]| try_read(bytes).unwrap();
        // Room made ahead, and past it what a crash may leave of a batch never synced: the
        // later page of it, the earlier one still zeros.
        let mut bytes = format!("{records}\0\0\0").into_bytes();
        bytes.extend_from_slice(b.as_bytes());
        bytes.extend_from_slice(&[0; 100]);
        let contents = read(&bytes);
        assert_eq!(contents.good_len, records.len() as u64);
        assert_eq!(contents.torn, 0);
        assert_eq!(
            people(&contents.replay),
            [("a@example.com".into(), Status::Sent)]
        );
        // A line cut short by the room: torn, and counted as such.
        let bytes = format!("{records}{}\0\0\0\n", &b[..20]);
        let contents = read(bytes.as_bytes());
        assert_eq!(
            (contents.good_len, contents.torn),
            (records.len() as u64, 20)
        );
        // A whole record whose newline is still a NUL: kept, and its newline owed.
        let bytes = format!("{records}{}\0\0", b.trim_end());
        let contents = read(bytes.as_bytes());
        assert_eq!(contents.good_len as usize, records.len() + b.len() - 1);
        assert!(contents.missing_newline);
        assert_eq!(people(&contents.replay).len(), 2);
        // A file that starts with a NUL is no log.
        let err = try_read(b"\0\0\n").err();
        assert!(matches!(err, Some(SendLogError::NotALog { .. })), "{err:?}");
    }
}
