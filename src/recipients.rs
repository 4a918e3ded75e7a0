//! The recipient list: a CSV file streamed row by row and validated.
//!
//! A list can hold millions of rows, so it is never loaded whole: [`RecipientReader`] yields one
//! [`Row`] at a time. A bad row is *rejected* (with its line, field and reason; the checks are
//! in `row`) and the stream goes on: one typo must not stop a campaign to a hundred thousand
//! people. Only a file that cannot be read at all, is not UTF-8 (checked whole before the first
//! row, see `encoding`), or has no `email` column, is fatal.
//!
//! Every field that reaches a header (the address, and the name columns of `To`) is checked for
//! CR and LF, which would let a row inject headers; such a row is refused, never folded.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::csvline::Tracked;
use crate::error::{Classify, ErrorKind};
use crate::keymap::KeyMap;
use crate::suppression::SuppressionList;

mod encoding;
mod row;

pub use row::{Columns, KeyRow, MAX_FIELD_CHARS, Recipient, Row, RowError};

/// The list cannot be read at all: nothing is sent.
#[derive(Debug, thiserror::Error)]
pub enum RecipientsError {
    #[error("cannot read recipient file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: cannot read the CSV: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error(
        "{path}:{line}: not UTF-8 (byte {byte:#04X}): the whole file is refused, before anything is sent; save it as UTF-8, or convert it and use the converted file, e.g. `{conversion}`"
    )]
    NotUtf8 {
        path: PathBuf,
        line: u64,
        byte: u8,
        conversion: String,
    },
    #[error("{path}:1: the header row has no `email` column (columns: {columns})")]
    MissingEmail { path: PathBuf, columns: String },
    #[error("{path}:1: column `{column}` appears twice in the header row")]
    DuplicateColumn { path: PathBuf, column: String },
}

impl Classify for RecipientsError {
    fn kind(&self) -> ErrorKind {
        match self {
            // Unreadable is as unsendable as malformed: a person must fix the file or its path.
            RecipientsError::Read { .. }
            | RecipientsError::Csv { .. }
            | RecipientsError::MissingEmail { .. }
            | RecipientsError::DuplicateColumn { .. }
            | RecipientsError::NotUtf8 { .. } => ErrorKind::Invalid,
        }
    }
}

/// Streams and validates the rows of a recipient CSV.
pub struct RecipientReader {
    path: PathBuf,
    csv: csv::Reader<Tracked<Box<dyn Read + Send>>>,
    columns: Arc<Columns>,
    seen: KeyMap<()>,
    record: csv::ByteRecord,
    suppression: Option<Arc<SuppressionList>>,
    /// Lines before the first the csv reader saw: it starts again after a broken record.
    line_offset: u64,
}

impl RecipientReader {
    /// Opens `path` and reads its header row. `name_columns` are joined to form the display name
    /// (those absent from the file are ignored).
    ///
    /// The file is first read once through: one that is not UTF-8 is refused whole
    /// ([`RecipientsError::NotUtf8`]), so that no command goes on with the rows that happen to
    /// be readable.
    pub fn open(path: &Path, name_columns: &[String]) -> Result<RecipientReader, RecipientsError> {
        let read_error = |source| RecipientsError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(read_error)?;
        if let Some(found) = encoding::first_non_utf8(&file).map_err(read_error)? {
            let mut start = Vec::with_capacity(2);
            file.rewind().map_err(read_error)?;
            (&file)
                .take(2)
                .read_to_end(&mut start)
                .map_err(read_error)?;
            return Err(RecipientsError::NotUtf8 {
                path: path.to_owned(),
                line: found.line,
                byte: found.byte,
                conversion: encoding::conversion(path, &start),
            });
        }
        // The same open file, read again: what was checked is what is sent.
        file.rewind().map_err(read_error)?;
        Self::from_reader(path, Box::new(std::io::BufReader::new(file)), name_columns)
    }

    /// Like [`open`](Self::open) over any reader; `path` names it in errors.
    pub fn from_reader(
        path: &Path,
        reader: Box<dyn Read + Send>,
        name_columns: &[String],
    ) -> Result<RecipientReader, RecipientsError> {
        let mut csv = csv_reader(Tracked::new(reader), true);
        let header = csv
            .byte_headers()
            .map_err(|e| csv_error(path, &e, 0))?
            .clone();
        // A name over lines is a quote left open: the header took the rows below it.
        if header.iter().any(|name| name.contains(&b'\n')) {
            return Err(RecipientsError::Csv {
                path: path.to_owned(),
                line: 1,
                message: "a quote opens a column name and does not close on the header row, \
                          so the rows below were read into the header; close the quote"
                    .into(),
            });
        }
        let mut names = Vec::with_capacity(header.len());
        for (i, raw) in header.iter().enumerate() {
            let mut name = String::from_utf8_lossy(raw).trim().to_lowercase();
            if i == 0 {
                name = name.trim_start_matches('\u{feff}').to_owned();
            }
            if names.contains(&name) {
                return Err(RecipientsError::DuplicateColumn {
                    path: path.to_owned(),
                    column: name,
                });
            }
            names.push(name);
        }
        let email = names.iter().position(|n| n == "email").ok_or_else(|| {
            RecipientsError::MissingEmail {
                path: path.to_owned(),
                columns: names.join(", "),
            }
        })?;
        let name_parts = name_columns
            .iter()
            .filter_map(|c| names.iter().position(|n| n == c))
            .collect();
        Ok(RecipientReader {
            path: path.to_owned(),
            csv,
            columns: Arc::new(Columns {
                names,
                email,
                name_parts,
            }),
            seen: KeyMap::new(),
            record: csv::ByteRecord::new(),
            suppression: None,
            line_offset: 0,
        })
    }

    /// Yields people on `list` as [`Row::Suppressed`] instead of [`Row::Valid`].
    pub fn with_suppression(mut self, list: Arc<SuppressionList>) -> Self {
        self.suppression = Some(list);
        self
    }

    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next data row, `Ok(None)` at the end, or an error when the file can no longer be read.
    pub fn next_row(&mut self) -> Result<Option<Row>, RecipientsError> {
        Ok(match self.read_record()? {
            Record::End => None,
            Record::Read => Some(self.validate()),
            Record::Broken(error) => Some(Row::Rejected(error)),
        })
    }

    /// Like [`next_row`](Self::next_row), but yields only the person's key (see [`KeyRow`]):
    /// for counting people, with the same verdict on each row save the duplicate check, which
    /// is the caller's. (Keys read this way are not remembered by `next_row`'s.)
    pub fn next_key(&mut self) -> Result<Option<KeyRow>, RecipientsError> {
        Ok(match self.read_record()? {
            Record::End => None,
            Record::Read => Some(self.validate_key()),
            Record::Broken(error) => Some(KeyRow::Rejected(error)),
        })
    }

    /// Reads the next record into `self.record`. A quote left open would take every line up to
    /// the next quote (or the end of the file) into one row, and the people on them out of the
    /// campaign unseen: a record that runs over lines with its quoting broken, or with too few
    /// or too many fields, is refused on its first line, and the lines after it read again.
    fn read_record(&mut self) -> Result<Record, RecipientsError> {
        let before = self.csv.position().clone();
        self.csv.get_mut().mark(before.byte());
        match self.csv.read_byte_record(&mut self.record) {
            Ok(false) => return Ok(Record::End),
            Ok(true) => {}
            Err(e) => return Err(csv_error(&self.path, &e, self.line_offset)),
        }
        let spans_lines = self.record.iter().any(|field| field.contains(&b'\n'));
        if !spans_lines {
            return Ok(Record::Read);
        }
        let end = self.csv.position().byte();
        let Some(raw) = self.csv.get_ref().bytes(before.byte(), end) else {
            return Ok(Record::Read);
        };
        if self.record.len() == self.columns.names.len() && crate::csvline::well_quoted(raw) {
            return Ok(Record::Read);
        }
        let (line, next) = crate::csvline::broken_record_start(raw, before.line());
        let after = &raw[next..];
        let last = line
            + after.iter().filter(|&&b| b == b'\n').count() as u64
            + u64::from(!after.is_empty() && !after.ends_with(b"\n"));
        let resume = before.byte() + next as u64;
        let empty: Box<dyn Read + Send> = Box::new(std::io::empty());
        let spent = std::mem::replace(&mut self.csv, csv_reader(Tracked::new(empty), false));
        let rest = spent.into_inner().resume_at(resume);
        // The lines after the broken one are data rows, not a header.
        self.csv = csv_reader(rest, false);
        let (first, last) = (line + self.line_offset, last + self.line_offset);
        let span = match last > first {
            true => format!(" (read so, the row would run over lines {first} to {last})"),
            false => String::new(),
        };
        let error = row::RowError {
            line: first,
            field: None,
            problem: format!(
                "a quote opens a value that does not close where a value ends{span}; this line \
                 is refused and the next ones read as rows of their own (close the quote, or \
                 double it: \"\")"
            ),
        };
        self.line_offset += line;
        Ok(Record::Broken(error))
    }
}

/// What [`RecipientReader::read_record`] found.
enum Record {
    End,
    Read,
    Broken(RowError),
}

/// The csv reader of a recipient list: its rows may have any number of fields (each row's
/// count is checked against the header's by the reader).
fn csv_reader(
    input: Tracked<Box<dyn Read + Send>>,
    has_headers: bool,
) -> csv::Reader<Tracked<Box<dyn Read + Send>>> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(has_headers)
        .from_reader(input)
}

fn csv_error(path: &Path, error: &csv::Error, line_offset: u64) -> RecipientsError {
    match error.kind() {
        csv::ErrorKind::Io(e) => RecipientsError::Read {
            path: path.to_owned(),
            source: std::io::Error::new(e.kind(), e.to_string()),
        },
        _ => RecipientsError::Csv {
            path: path.to_owned(),
            line: error.position().map_or(0, |p| p.line() + line_offset),
            message: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
