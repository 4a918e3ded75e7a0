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
        let mut csv = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(Tracked::new(reader));
        let header = csv.byte_headers().map_err(|e| csv_error(path, &e))?.clone();
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
        match self.csv.read_byte_record(&mut self.record) {
            Ok(false) => Ok(None),
            Ok(true) => Ok(Some(self.validate())),
            Err(e) => Err(csv_error(&self.path, &e)),
        }
    }

    /// Like [`next_row`](Self::next_row), but yields only the person's key (see [`KeyRow`]):
    /// for counting people, with the same verdict on each row save the duplicate check, which
    /// is the caller's. (Keys read this way are not remembered by `next_row`'s.)
    pub fn next_key(&mut self) -> Result<Option<KeyRow>, RecipientsError> {
        match self.csv.read_byte_record(&mut self.record) {
            Ok(false) => Ok(None),
            Ok(true) => Ok(Some(self.validate_key())),
            Err(e) => Err(csv_error(&self.path, &e)),
        }
    }
}

fn csv_error(path: &Path, error: &csv::Error) -> RecipientsError {
    match error.kind() {
        csv::ErrorKind::Io(e) => RecipientsError::Read {
            path: path.to_owned(),
            source: std::io::Error::new(e.kind(), e.to_string()),
        },
        _ => RecipientsError::Csv {
            path: path.to_owned(),
            line: error.position().map_or(0, |p| p.line()),
            message: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suppression::Reason;

    fn rows(csv: &str) -> Vec<Result<Recipient, RowError>> {
        let names = vec!["first_name".to_owned(), "last_name".to_owned()];
        let mut reader = RecipientReader::from_reader(
            Path::new("list.csv"),
            Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
            &names,
        )
        .unwrap();
        let mut out = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            out.push(match row {
                Row::Valid(r) => Ok(r),
                Row::Rejected(e) => Err(e),
                Row::Suppressed(..) => unreachable!("no suppression list"),
            });
        }
        out
    }

    #[test]
    fn valid_rows_with_bom_and_names() {
        let out = rows(
            "\u{feff}Email,First_Name,last_name,amount\nmarie@example.com,Marie,Curie,50\nzoe@example.org,,,\n",
        );
        let marie = out[0].as_ref().unwrap();
        assert_eq!((marie.line, marie.name.as_str()), (2, "Marie Curie"));
        assert_eq!(marie.field("amount"), Some("50"));
        assert_eq!(out[1].as_ref().unwrap().name, "");
    }

    #[test]
    fn bad_rows_are_rejected_with_line_and_field_and_the_rest_goes_on() {
        let csv = "email,first_name\n\
                   ok@example.com,Ok\n\
                   ,Empty\n\
                   not-an-address,Bad\n\
                   OK@Example.com,Dup\n\
                   a@example.com,too,many\n\
                   \"b@example.com\",\"Eve\r\nBcc: victim@example.net\"\n\
                   c@example.com,last\n";
        let out = rows(csv);
        let problems: Vec<(u64, Option<&str>)> = out
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|e| (e.line, e.field.as_deref()))
            .collect();
        assert_eq!(
            problems,
            [
                (3, Some("email")),
                (4, Some("email")),
                (5, Some("email")),
                (6, None),
                (7, Some("first_name"))
            ]
        );
        let valid: Vec<String> = out.iter().flatten().map(|r| r.email.to_string()).collect();
        assert_eq!(valid, ["ok@example.com", "c@example.com"]);
        assert_eq!(out.last().unwrap().as_ref().unwrap().line, 9);
    }

    #[test]
    fn crlf_files_name_the_lines_an_editor_shows() {
        for eol in ["\n", "\r\n"] {
            let csv = [
                "email,first_name,note",
                "ok@example.com,Ok,",
                "not-an-address,Bad,",
                "multi@example.com,Multi,\"two",
                "lines\"",
                ",Empty,",
                "last@example.com,Last,",
            ]
            .join(eol);
            let lines: Vec<u64> = rows(&csv)
                .iter()
                .map(|row| match row {
                    Ok(r) => r.line,
                    Err(e) => e.line,
                })
                .collect();
            assert_eq!(lines, [2, 3, 4, 6, 7], "{eol:?}");
        }
    }

    #[test]
    fn overlong_and_non_utf8_fields_are_rejected() {
        let long = "x".repeat(MAX_FIELD_CHARS + 1);
        let out = rows(&format!("email,first_name\na@example.com,{long}\n"));
        assert!(out[0].as_ref().unwrap_err().problem.contains("longer"));
        let names = vec!["first_name".to_owned()];
        let mut reader = RecipientReader::from_reader(
            Path::new("l.csv"),
            Box::new(std::io::Cursor::new(
                b"email,first_name\na@example.com,Fran\xe7oise\n".to_vec(),
            )),
            &names,
        )
        .unwrap();
        let Some(Row::Rejected(e)) = reader.next_row().unwrap() else {
            panic!()
        };
        assert!(e.problem.contains("UTF-8"));
    }

    #[test]
    fn missing_email_column_is_fatal() {
        let err = RecipientReader::from_reader(
            Path::new("l.csv"),
            Box::new(std::io::Cursor::new(b"mail,name\n".to_vec())),
            &[],
        )
        .err()
        .unwrap();
        assert!(matches!(err, RecipientsError::MissingEmail { .. }));
    }

    #[test]
    fn suppressed_people_come_out_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unsub.txt");
        std::fs::write(&path, "Zoe@EXAMPLE.com\nmarie@example.com\n").unwrap();
        let (list, _) = SuppressionList::load(&[(Reason::Unsubscribed, path)]).unwrap();
        // Whoever the list deduplicates as one person, suppression stops as one person.
        let csv = "email\nZoe@example.com\nMarie@Example.com\nanne@example.com\n";
        let mut reader = RecipientReader::from_reader(
            Path::new("l.csv"),
            Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
            &[],
        )
        .unwrap()
        .with_suppression(Arc::new(list));
        let mut kinds = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            kinds.push(match row {
                Row::Valid(r) => format!("valid {}", r.email),
                Row::Suppressed(r, reason) => format!("{reason} {}", r.email),
                Row::Rejected(e) => format!("rejected {}", e.line),
            });
        }
        assert_eq!(
            kinds,
            [
                "unsubscribed Zoe@example.com",
                "unsubscribed Marie@Example.com",
                "valid anne@example.com"
            ]
        );
    }
}
