//! Reading a log file back: every record replayed, a torn last line (a write a crash cut short,
//! never acknowledged) cut off, and a file that is not a send log refused before anything is
//! made beside it or written to it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::sendlog::{Replay, SendLogError, check_campaign};

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

/// Replays the file, then cuts off a torn last line (a write the crash interrupted: it was never
/// acknowledged, so dropping it loses nothing), so that new records start on a line of their own.
/// Also says whether the last record lacks its newline.
pub(super) fn replay_and_repair(
    path: &Path,
    file: &mut File,
) -> Result<(Replay, bool), SendLogError> {
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
/// is whole, its newline lost: it is kept. The first line must be a header or a record, torn
/// or not: otherwise the file is not a send log.
pub(super) fn read_records(path: &Path, file: File) -> Result<(Replay, u64, bool), SendLogError> {
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
        let parsed = if number == 1 {
            replay.apply_first_line(&line)
        } else {
            replay.apply_line(&line)
        };
        match parsed {
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
