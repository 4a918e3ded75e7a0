//! Adding people to a suppression list while others read and add to it too.
//!
//! Three writers reach the same files: `serve` (someone clicked "unsubscribe"), `bounces` (a
//! mailbox does not exist) and `send` (a server refused an address for good). Several of each may
//! run at once, on one file. An [`Appender`] keeps them from tearing or doubling lines: it holds
//! an exclusive `flock` on the file while it appends, first reads what other processes added
//! since it last looked (so an address is written once, whoever wrote it first), and syncs the
//! file before [`Appender::add`] returns, so an answer "you are unsubscribed" is never undone by
//! a crash. Addresses match as everywhere in missive ([`RecipientKey`]).
//!
//! The file keeps the format it has: one address a line, or a CSV whose header has an `email`
//! column (a row is added with the address in that column, the others empty). A new file is one
//! address a line.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Reason, SuppressionError, read_file};
use crate::address::RecipientKey;

/// The file's shape, as its first line says.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Lines,
    /// A CSV: the position of its `email` column, and how many columns its header has.
    Csv {
        column: usize,
        columns: usize,
    },
}

/// Appends addresses to one suppression file; see the module's doc.
#[derive(Debug)]
pub struct Appender {
    path: PathBuf,
    reason: Reason,
    file: File,
    shape: Shape,
    known: HashSet<RecipientKey>,
    /// How far the file has been read: what lies past it was appended by someone else.
    read_to: u64,
}

impl Appender {
    /// Opens the list at `path` (creating it, and its folder, when missing) and reads it.
    pub fn open(path: &Path, reason: Reason) -> Result<Appender, SuppressionError> {
        let io = |source| SuppressionError::Read {
            path: path.to_owned(),
            reason,
            source,
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(&io)?;
        }
        let created = !path.try_exists().map_err(&io)?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(&io)?;
        if created {
            // The new name must survive a crash as the lines written into it will.
            sync_dir(path).map_err(&io)?;
        }
        let mut appender = Appender {
            path: path.to_owned(),
            reason,
            file,
            shape: Shape::Lines,
            known: HashSet::new(),
            read_to: 0,
        };
        appender.file.lock().map_err(&io)?;
        let read = appender.read_all();
        let unlocked = appender.file.unlock().map_err(&io);
        read.and(unlocked)?;
        Ok(appender)
    }

    /// Makes the error of a failed read or write of this file.
    fn io_error(&self) -> impl Fn(std::io::Error) -> SuppressionError + use<> {
        let (path, reason) = (self.path.clone(), self.reason);
        move |source| SuppressionError::Read {
            path: path.clone(),
            reason,
            source,
        }
    }

    /// The file it appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when `address` was in the file when it was last read.
    pub fn contains(&self, address: &str) -> bool {
        self.known.contains(&RecipientKey::of(address))
    }

    /// Appends each of `addresses` not in the file yet, and syncs: when this returns `Ok`, they
    /// are on disk. The answer says, for each, whether it was written now (`false`: it was
    /// there already, or earlier in `addresses`). Callers check the addresses first: whatever
    /// is given is written.
    pub fn add(&mut self, addresses: &[&str]) -> Result<Vec<bool>, SuppressionError> {
        let io = self.io_error();
        self.lock_current()?;
        let added = self.add_locked(addresses);
        let unlocked = self.file.unlock().map_err(&io);
        let added = added?;
        unlocked?;
        Ok(added)
    }

    /// Locks the file that `path` names now. A long-lived appender (`serve` runs for months)
    /// outlives the file it opened when a person rewrites the list the usual way (`sed -i`, an
    /// editor, a deploy: a new file renamed over the old) or moves it away: what it appended to
    /// its old handle would be synced into a file nobody reads again. So it opens the new one
    /// (creating it if gone), reads it whole, and locks that.
    fn lock_current(&mut self) -> Result<(), SuppressionError> {
        let io = self.io_error();
        loop {
            self.file.lock().map_err(&io)?;
            let current = match std::fs::metadata(&self.path)
                .and_then(|named| Ok(same_file(&named, &self.file.metadata()?)))
            {
                Ok(current) => current,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
                Err(error) => {
                    let _ = self.file.unlock();
                    return Err(io(error));
                }
            };
            if current {
                return Ok(());
            }
            let _ = self.file.unlock();
            let reopened = Appender::open(&self.path, self.reason)?;
            *self = reopened;
            // Another rename may have come between the open and the lock: check again.
        }
    }

    fn add_locked(&mut self, addresses: &[&str]) -> Result<Vec<bool>, SuppressionError> {
        self.catch_up()?;
        let mut text = Vec::new();
        let mut added = Vec::with_capacity(addresses.len());
        // Known only once synced: after a failed write (a full disk) the caller answers "try
        // again", and the retry must write the address, not find it known and answer "done".
        let mut fresh = HashSet::new();
        for address in addresses {
            let key = RecipientKey::of(address);
            let new = !self.known.contains(&key) && fresh.insert(key);
            if new {
                self.line(address, &mut text)?;
            }
            added.push(new);
        }
        if text.is_empty() {
            return Ok(added);
        }
        let io = self.io_error();
        // A last line without its newline (someone's editor, or a writer that died mid-line)
        // would swallow the first address written after it.
        if self.read_to > 0 && !self.ends_with_newline().map_err(&io)? {
            text.insert(0, b'\n');
        }
        self.file.write_all(&text).map_err(&io)?;
        self.file.sync_data().map_err(&io)?;
        self.known.extend(fresh);
        self.read_to = self.file.metadata().map_err(&io)?.len();
        Ok(added)
    }

    /// Formats `address` as a line of this file.
    fn line(&self, address: &str, out: &mut Vec<u8>) -> Result<(), SuppressionError> {
        match self.shape {
            Shape::Lines => {
                out.extend_from_slice(address.as_bytes());
                out.push(b'\n');
            }
            Shape::Csv { column, columns } => {
                let mut row = vec![""; columns.max(column + 1)];
                row[column] = address;
                let mut writer = csv::Writer::from_writer(&mut *out);
                writer
                    .write_record(&row)
                    .and_then(|()| writer.flush().map_err(csv::Error::from))
                    .map_err(|e| SuppressionError::Csv {
                        path: self.path.clone(),
                        line: 0,
                        message: e.to_string(),
                    })?;
            }
        }
        Ok(())
    }

    /// Reads the whole file: its shape, and every address in it (and only those: a line a
    /// person removed must not keep its address known, or that person could never be added
    /// again while this appender lives).
    fn read_all(&mut self) -> Result<(), SuppressionError> {
        let io = self.io_error();
        self.known.clear();
        let mut first = String::new();
        let mut reader = BufReader::new(&self.file);
        reader.seek(SeekFrom::Start(0)).map_err(&io)?;
        reader.read_line(&mut first).map_err(&io)?;
        self.shape = shape_of(&first);
        let mut reader = BufReader::new(&self.file);
        reader.seek(SeekFrom::Start(0)).map_err(&io)?;
        let known = &mut self.known;
        read_file(&self.path, self.reason, reader, &mut |address, _line| {
            known.insert(RecipientKey::of(address));
        })?;
        self.read_to = self.file.metadata().map_err(&io)?.len();
        Ok(())
    }

    /// Reads the lines other processes appended since this one last read the file.
    fn catch_up(&mut self) -> Result<(), SuppressionError> {
        let io = self.io_error();
        let len = self.file.metadata().map_err(&io)?.len();
        if len == self.read_to {
            return Ok(());
        }
        if len < self.read_to || self.read_to == 0 {
            // Shortened or rewritten by a person: read it all again.
            return self.read_all();
        }
        let mut tail = Vec::new();
        let mut reader = &self.file;
        reader.seek(SeekFrom::Start(self.read_to)).map_err(&io)?;
        reader
            .take(len - self.read_to)
            .read_to_end(&mut tail)
            .map_err(&io)?;
        match self.shape {
            Shape::Lines => {
                for line in tail.split(|&b| b == b'\n') {
                    let line = String::from_utf8_lossy(line);
                    let address = line.trim();
                    if !address.is_empty() && !super::is_comment(address) {
                        self.known.insert(RecipientKey::of(address));
                    }
                }
            }
            Shape::Csv { column, .. } => {
                let mut rows = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(tail.as_slice());
                for row in rows.records().flatten() {
                    if let Some(address) = row.get(column).map(str::trim)
                        && !address.is_empty()
                    {
                        self.known.insert(RecipientKey::of(address));
                    }
                }
            }
        }
        self.read_to = len;
        Ok(())
    }

    fn ends_with_newline(&self) -> std::io::Result<bool> {
        let mut last = [0u8; 1];
        let mut reader = &self.file;
        reader.seek(SeekFrom::End(-1))?;
        reader.read_exact(&mut last)?;
        Ok(last[0] == b'\n')
    }
}

/// What the first line says the file is (see [`super::read_file`], which decides the same way).
fn shape_of(first: &str) -> Shape {
    let header = first.trim_start_matches('\u{feff}').trim();
    // Read as CSV: a quoted column name may hold a comma (`"Name, as written",email`).
    let columns: Vec<String> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(header.as_bytes())
        .records()
        .next()
        .and_then(Result::ok)
        .map(|record| record.iter().map(|c| c.trim().to_owned()).collect())
        .unwrap_or_default();
    match columns.iter().position(|c| c.eq_ignore_ascii_case("email")) {
        Some(column) => Shape::Csv {
            column,
            columns: columns.len(),
        },
        None => Shape::Lines,
    }
}

/// True when two metadata are of one file (on Unix, its device and inode).
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

/// Syncs the folder holding `path`, so that a file just created there is found after a crash.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
