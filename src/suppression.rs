//! Suppression lists: the people who must never be mailed again — they unsubscribed, their
//! address bounced, or they complained of spam.
//!
//! `campaign.toml` names the files (`[suppression] unsubscribed`, `bounced`, `complained`).
//! Each is either one address a line (blank lines and `#` comments are skipped) or a CSV whose
//! header has an `email` column. They are read once per run into a [`SuppressionList`]: a sorted
//! array of 16-byte hashes, 17 bytes an address whatever its length (a million addresses take
//! 17 MB, read once, never copied), searched by bisection for each recipient. The recipient
//! reader consults it and yields suppressed people as [`Row::Suppressed`], so no code path can
//! mail them by forgetting to ask.
//!
//! Addresses match as the rest of missive matches them, without case on the whole address (see
//! [`crate::address`]): suppression is never narrower than deduplication, so whoever
//! unsubscribed as `marie@…` is not mailed as `Marie@…`.
//!
//! [`Row::Suppressed`]: crate::recipients::Row::Suppressed

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::address::RecipientKey;
use crate::csvline::{self, Tracked};

use crate::error::{Classify, ErrorKind};

mod append;

pub use append::Appender;

/// Why someone is on a suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Unsubscribed,
    Bounced,
    Complained,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Unsubscribed => "unsubscribed",
            Reason::Bounced => "bounced",
            Reason::Complained => "complained",
        })
    }
}

/// A suppression file cannot be read: sending could reach people who asked not to be mailed,
/// so nothing is sent.
#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    #[error("cannot read suppression list {path} ({reason}): {source}")]
    Read {
        path: PathBuf,
        reason: Reason,
        source: std::io::Error,
    },
    #[error(
        "{path}:1: a CSV header without an `email` column (columns: {columns}); name the address column `email`"
    )]
    NoEmailColumn { path: PathBuf, columns: String },
    #[error("{path}:{line}: cannot read the CSV: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

impl Classify for SuppressionError {
    fn kind(&self) -> ErrorKind {
        match self {
            SuppressionError::Read { .. }
            | SuppressionError::NoEmailColumn { .. }
            | SuppressionError::Csv { .. } => ErrorKind::Invalid,
        }
    }
}

/// A line of a suppression file that holds no address (it suppresses nobody): a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub line: u64,
    pub problem: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.problem)
    }
}

/// Every suppressed address of a campaign, with why.
#[derive(Debug, Default)]
pub struct SuppressionList {
    /// Sorted by key; one entry a key (the first reason in file order wins).
    entries: Vec<(RecipientKey, Reason)>,
}

impl SuppressionList {
    /// Reads every file of `sources`, in order. Lines without an address are returned as
    /// [`Skipped`], to be reported; an unreadable file is an error.
    pub fn load(
        sources: &[(Reason, PathBuf)],
    ) -> Result<(SuppressionList, Vec<Skipped>), SuppressionError> {
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for (reason, path) in sources {
            let file = File::open(path).map_err(|source| SuppressionError::Read {
                path: path.clone(),
                reason: *reason,
                source,
            })?;
            read_file(path, *reason, BufReader::new(file), &mut |address, line| {
                match address.parse::<lettre::Address>() {
                    Ok(_) => entries.push((RecipientKey::of(address), *reason)),
                    Err(e) => skipped.push(Skipped {
                        path: path.clone(),
                        line,
                        problem: format!(
                            "{address:?} is not an address ({e}); it suppresses nobody"
                        ),
                    }),
                }
            })?;
        }
        // A stable sort keeps file order among equal keys, so dedup keeps the first reason.
        entries.sort_by_key(|(key, _)| *key);
        entries.dedup_by_key(|(key, _)| *key);
        entries.shrink_to_fit();
        Ok((SuppressionList { entries }, skipped))
    }

    /// Why `address` is suppressed, or `None` when it may be mailed.
    pub fn reason(&self, address: &str) -> Option<Reason> {
        self.reason_by_key(&RecipientKey::of(address))
    }

    /// Why the person with `key` is suppressed, or `None` when they may be mailed.
    pub fn reason_by_key(&self, key: &RecipientKey) -> Option<Reason> {
        self.entries
            .binary_search_by_key(key, |(k, _)| *k)
            .ok()
            .map(|i| self.entries[i].1)
    }

    /// How many distinct addresses are suppressed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A `#` line is a comment, unless it is an address: `#x@example.org` is one that can be mailed
/// (and so unsubscribe), and a list that skipped it would never stop mailing that person.
fn is_comment(line: &str) -> bool {
    line.starts_with('#') && line.parse::<lettre::Address>().is_err()
}

/// Calls `found(address, line)` for every address of one file, streaming it.
fn read_file(
    path: &Path,
    reason: Reason,
    mut reader: impl BufRead,
    found: &mut dyn FnMut(&str, u64),
) -> Result<(), SuppressionError> {
    let read_error = |source| SuppressionError::Read {
        path: path.to_owned(),
        reason,
        source,
    };
    let mut first = String::new();
    reader.read_line(&mut first).map_err(read_error)?;
    let header = first.trim_start_matches('\u{feff}').trim();
    let is_csv = header.split(',').any(|column| {
        column
            .trim()
            .trim_matches('"')
            .eq_ignore_ascii_case("email")
    });
    if is_csv {
        let rest = std::io::Cursor::new(first.into_bytes()).chain(reader);
        let mut csv = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(Tracked::new(rest));
        let csv_error = |e: csv::Error| SuppressionError::Csv {
            path: path.to_owned(),
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        };
        let headers = csv.headers().map_err(csv_error)?.clone();
        let column = headers
            .iter()
            .position(|h| {
                h.trim_start_matches('\u{feff}')
                    .trim()
                    .eq_ignore_ascii_case("email")
            })
            .expect("the header was seen to hold `email`");
        let mut record = csv::StringRecord::new();
        while csv.read_record(&mut record).map_err(csv_error)? {
            let line = csvline::start_line(&csv, record.as_byte_record());
            let address = record.get(column).unwrap_or("").trim();
            if !address.is_empty() {
                found(address, line);
            }
        }
        return Ok(());
    }
    // A header row that names no `email` column would make every row a non-address: the whole
    // list would silently suppress nobody.
    if header.contains(',') && !header.contains('@') {
        return Err(SuppressionError::NoEmailColumn {
            path: path.to_owned(),
            columns: header.to_owned(),
        });
    }
    let mut line_number = 1;
    let mut line = first;
    loop {
        let address = line.trim_start_matches('\u{feff}').trim();
        if !address.is_empty() && !is_comment(address) {
            found(address, line_number);
        }
        line.clear();
        if reader.read_line(&mut line).map_err(read_error)? == 0 {
            return Ok(());
        }
        line_number += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn plain_and_csv_files_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let plain = write(
            dir.path(),
            "unsub.txt",
            "# people who left\nMarie@Example.COM\n\n  zoe@example.org  \nnot an address\n",
        );
        let csv = write(
            dir.path(),
            "bounces.csv",
            "\u{feff}date,Email,code\n2026-01-01,bounce@example.net,550\n2026-01-02,zoe@example.org,550\n",
        );
        let (list, skipped) = SuppressionList::load(&[
            (Reason::Unsubscribed, plain.clone()),
            (Reason::Bounced, csv),
        ])
        .unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list.reason("Marie@example.com"), Some(Reason::Unsubscribed));
        assert_eq!(
            list.reason("marie@example.com"),
            Some(Reason::Unsubscribed),
            "the local part matches without case too, as deduplication does"
        );
        assert_eq!(list.reason("zoe@EXAMPLE.org"), Some(Reason::Unsubscribed));
        assert_eq!(list.reason("bounce@example.net"), Some(Reason::Bounced));
        assert_eq!(list.reason("other@example.net"), None);
        assert_eq!(skipped.len(), 1);
        assert_eq!((skipped[0].path.clone(), skipped[0].line), (plain, 5));
    }

    #[test]
    fn a_line_that_starts_with_a_hash_is_a_comment_unless_it_is_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let plain = write(
            dir.path(),
            "u.txt",
            "# people who left\n#x@example.org\n#not an address\n",
        );
        let (list, skipped) = SuppressionList::load(&[(Reason::Unsubscribed, plain)]).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list.reason("#x@example.org"), Some(Reason::Unsubscribed));
        assert!(skipped.is_empty(), "{skipped:?}");
    }

    #[test]
    fn a_crlf_csv_names_the_lines_an_editor_shows() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            dir.path(),
            "bounces.csv",
            "email,reply\r\na@example.com,\"550\r\nno such user\"\r\nnot an address,550\r\n",
        );
        let (list, skipped) = SuppressionList::load(&[(Reason::Bounced, csv)]).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].line, 4, "{}", skipped[0]);
    }

    #[test]
    fn a_csv_without_an_email_column_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            dir.path(),
            "b.csv",
            "Email Address,date\na@example.com,2026\n",
        );
        let err = SuppressionList::load(&[(Reason::Bounced, csv)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("b.csv:1") && err.contains("`email`"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err =
            SuppressionList::load(&[(Reason::Complained, PathBuf::from("/nonexistent/c.txt"))])
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("/nonexistent/c.txt") && err.contains("complained"),
            "{err}"
        );
    }
}
