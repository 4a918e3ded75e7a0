//! Lock files: one process at a time holds a campaign, or a log.
//!
//! A lock is a file of its own holding the holder's pid (for the message a second run prints),
//! locked with `flock`, which the OS releases when the process dies, however it dies. Taking a
//! lock must never harm what is there: a file in the lock's place that is not a lock (a log
//! named like one, say) is refused and left as it was.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use super::SendLogError;

/// Takes the lock file at `lock_path` and writes our pid into it; `busy` makes the error when
/// another process holds it. A file there that is not a lock (a lock is empty or holds one pid)
/// is someone else's, perhaps a log: it is refused and left as it was.
pub(super) fn take_lock(
    lock_path: &Path,
    busy: impl FnOnce(String) -> SendLogError,
) -> Result<File, SendLogError> {
    let io = |source| SendLogError::Io {
        path: lock_path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .map_err(io)?;
    // A lock holds a pid and a newline; a longer file is not one, and need not be read whole.
    let content = |file: &mut File| {
        let mut bytes = Vec::new();
        file.rewind()
            .and_then(|()| file.take(33).read_to_end(&mut bytes))
            .map(|_| bytes)
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = content(&mut file).unwrap_or_default();
            let pid = String::from_utf8_lossy(&pid);
            let holder = match pid.trim() {
                "" => String::new(),
                pid => format!(" (process {pid})"),
            };
            return Err(busy(holder));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let bytes = content(&mut file).map_err(io)?;
    let is_a_lock = bytes.len() <= 32 && bytes.iter().all(|b| b.is_ascii_digit() || *b == b'\n');
    if !is_a_lock {
        return Err(SendLogError::NotALog {
            path: lock_path.to_owned(),
            problem: "missive keeps a lock here, but this file is not one: it is left as it \
                      is; move it, or give the send log another name"
                .into(),
        });
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .map_err(io)?;
    Ok(file)
}
