//! One row of the list: what a valid person is ([`Recipient`], with the [`Columns`] its values
//! are named by), what a refusal says ([`RowError`]), and the checks that decide which.
//!
//! The checks run in the order a person fixing the file would want them: the row's shape, then
//! each field (UTF-8, length, no line break or control character where it reaches a header),
//! then the address (present, short enough, well-formed, not seen before in the list), and last
//! the suppression lists.

use std::path::Path;
use std::sync::Arc;

use lettre::Address;

use super::RecipientReader;
use crate::address::RecipientKey;
use crate::csvline;
use crate::suppression::Reason;

/// Longest value accepted in any column. Longer is a broken export, not a name.
pub const MAX_FIELD_CHARS: usize = 1000;
/// RFC 5321's limit on a forward path.
const MAX_ADDRESS_CHARS: usize = 254;

/// A row that was refused: where, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub field: Option<String>,
    pub problem: String,
}

impl RowError {
    /// `file:line: field `name`: problem`, the way compilers point at a line.
    pub fn at(&self, path: &Path) -> String {
        match &self.field {
            Some(field) => format!(
                "{}:{}: field `{field}`: {}",
                path.display(),
                self.line,
                self.problem
            ),
            None => format!("{}:{}: {}", path.display(), self.line, self.problem),
        }
    }
}

/// The header row: column names (trimmed, lower-cased) and their positions.
#[derive(Debug)]
pub struct Columns {
    pub(super) names: Vec<String>,
    pub(super) email: usize,
    pub(super) name_parts: Vec<usize>,
}

impl Columns {
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// One valid person of the list.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// The line of the CSV the row starts on.
    pub line: u64,
    pub email: Address,
    pub key: RecipientKey,
    /// Display name for `To`, from the campaign's name columns; may be empty.
    pub name: String,
    values: Vec<String>,
    columns: Arc<Columns>,
}

impl Recipient {
    /// The value of column `name`, if the list has that column.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.columns.position(name).map(|i| self.values[i].as_str())
    }

    /// This person's fields, addressed to another mailbox with no display name: a test send
    /// renders one person's letter for a tester's address (whose link and tags are the tester's).
    pub fn addressed_to(&self, email: Address) -> Recipient {
        Recipient {
            line: self.line,
            key: RecipientKey::of(email.as_ref()),
            email,
            name: String::new(),
            values: self.values.clone(),
            columns: Arc::clone(&self.columns),
        }
    }
}

/// A row gives the letter's fields their values, and its address to the unsubscribe footer.
impl crate::letter::Fields for Recipient {
    fn field(&self, name: &str) -> Option<&str> {
        Recipient::field(self, name)
    }

    fn address(&self) -> Option<&str> {
        Some(self.email.as_ref())
    }
}

/// What the reader yields for each data row.
#[derive(Debug)]
pub enum Row {
    Valid(Recipient),
    Rejected(RowError),
    /// A valid row whose address is on a suppression list: never to be mailed.
    Suppressed(Recipient, Reason),
}

/// What [`RecipientReader::next_key`] yields for each data row: only what counting people
/// needs, without the row's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRow {
    /// A valid row's person, and the suppression list that names them, if any. Not checked
    /// against the rows before it: the caller finds repeats (by sorting the keys, say).
    Valid(RecipientKey, Option<Reason>),
    Rejected(RowError),
}

impl RecipientReader {
    /// The current record as a [`Row`]: a person, or the first reason to refuse the row.
    pub(super) fn validate(&mut self) -> Row {
        let line = csvline::start_line(&self.csv, &self.record) + self.line_offset;
        let mut values = Vec::with_capacity(self.record.len());
        let checked = self.check_fields(|_, value| values.push(value.to_owned()));
        let (email, key) = match checked.and_then(|()| check_address(&values[self.columns.email])) {
            Ok(person) => person,
            Err((field, problem)) => return Row::Rejected(row_error(line, field, problem)),
        };
        let raw_email = &values[self.columns.email];
        if !self.seen.insert(key, ()) {
            return Row::Rejected(row_error(
                line,
                Some("email"),
                format!(
                    "{raw_email} appears earlier in the list (compared without case); sent once"
                ),
            ));
        }
        let columns = &self.columns;
        let name = columns
            .name_parts
            .iter()
            .map(|&i| values[i].as_str())
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let recipient = Recipient {
            line,
            email,
            key,
            name,
            values,
            columns: Arc::clone(&self.columns),
        };
        match self.suppressed(&recipient.key) {
            Some(reason) => Row::Suppressed(recipient, reason),
            None => Row::Valid(recipient),
        }
    }

    /// The current record as a [`KeyRow`]: the checks of [`validate`](Self::validate) but the
    /// duplicate check, and nothing kept of the row but its person's key. A count over a
    /// million rows (`status`) spends its time here, not on values it never reads.
    pub(super) fn validate_key(&self) -> KeyRow {
        let mut email = "";
        let checked = self.check_fields(|i, value| {
            if i == self.columns.email {
                email = value;
            }
        });
        match checked.and_then(|()| check_address(email)) {
            Ok((_, key)) => KeyRow::Valid(key, self.suppressed(&key)),
            Err((field, problem)) => {
                let line = csvline::start_line(&self.csv, &self.record) + self.line_offset;
                KeyRow::Rejected(row_error(line, field, problem))
            }
        }
    }

    fn suppressed(&self, key: &RecipientKey) -> Option<Reason> {
        self.suppression
            .as_ref()
            .and_then(|list| list.reason_by_key(key))
    }

    /// The checks of the record's shape and of each field, in order, handing each field's
    /// trimmed value to `keep`; the first refusal (field, problem) otherwise.
    fn check_fields<'a>(
        &'a self,
        mut keep: impl FnMut(usize, &'a str),
    ) -> Result<(), (Option<&'a str>, String)> {
        let columns = &self.columns;
        if self.record.len() != columns.names.len() {
            return Err((
                None,
                format!(
                    "{} fields where the header has {} (a missing comma, or an unquoted comma inside a value?)",
                    self.record.len(),
                    columns.names.len()
                ),
            ));
        }
        for (i, raw) in self.record.iter().enumerate() {
            let name = Some(columns.names[i].as_str());
            let Ok(value) = std::str::from_utf8(raw) else {
                return Err((name, "not valid UTF-8 (save the file as UTF-8)".into()));
            };
            // No more than MAX_FIELD_CHARS bytes holds no more characters: counted only
            // beyond (the count reads every byte).
            if value.len() > MAX_FIELD_CHARS && value.chars().count() > MAX_FIELD_CHARS {
                return Err((name, format!("longer than {MAX_FIELD_CHARS} characters")));
            }
            let reaches_header = i == columns.email || columns.name_parts.contains(&i);
            if reaches_header && value.contains(['\r', '\n']) {
                return Err((
                    name,
                    "contains a line break (CR or LF); it would reach a mail header, so the row is refused".into(),
                ));
            }
            if reaches_header && value.chars().any(|c| c.is_control() && c != '\t') {
                return Err((name, "contains a control character".into()));
            }
            keep(i, value.trim());
        }
        Ok(())
    }
}

/// The checks of a (trimmed) address, and the person's key.
fn check_address(raw_email: &str) -> Result<(Address, RecipientKey), (Option<&str>, String)> {
    if raw_email.is_empty() {
        return Err((Some("email"), "empty address".into()));
    }
    if raw_email.len() > MAX_ADDRESS_CHARS {
        return Err((
            Some("email"),
            format!("address longer than {MAX_ADDRESS_CHARS} characters"),
        ));
    }
    let email: Address = match raw_email.parse() {
        Ok(address) => address,
        Err(e) => {
            return Err((Some("email"), format!("invalid address {raw_email:?}: {e}")));
        }
    };
    let key = RecipientKey::of(email.as_ref());
    Ok((email, key))
}

fn row_error(line: u64, field: Option<&str>, problem: String) -> RowError {
    RowError {
        line,
        field: field.map(str::to_owned),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::recipients::MAX_FIELD_CHARS;
    use crate::suppression::SuppressionList;

    #[test]
    fn keys_alone_get_the_verdict_of_whole_rows_but_for_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unsub.txt");
        std::fs::write(&path, "zoe@example.com\n").unwrap();
        let (list, _) = SuppressionList::load(&[(Reason::Unsubscribed, path)]).unwrap();
        let list = Arc::new(list);
        // A value of 1,000 characters in 2,000 bytes passes; one more character does not.
        let wide = "é".repeat(MAX_FIELD_CHARS);
        let csv = format!(
            "\u{feff}Email,first_name,note\r\n\
             ok@example.com,Ok,\r\n\
             ,Empty,\r\n\
             not-an-address,Bad,\r\n\
             {long}@example.com,Long,\r\n\
             a@example.com,too,many,\r\n\
             b@example.com,\"Eve\r\nBcc: victim@example.net\",\r\n\
             c@example.com,Tab\there,\"two\r\nlines are fine here\"\r\n\
             d@example.com,Bell\u{7},\r\n\
             e@example.com,Wide,{wide}\r\n\
             f@example.com,Wider,{wide}é\r\n\
             g@example.com,Latin1,Fran\u{fffd}\r\n\
             Zoe@Example.com,Zoe,\r\n\
             OK@example.com,Again,\r\n\
             \" h@example.com \",Spaces,\r\n",
            long = "x".repeat(250)
        );
        let mut bytes = csv.into_bytes();
        // A byte that is not UTF-8, where the row has its replacement character.
        let at = bytes
            .windows(3)
            .position(|w| w == "\u{fffd}".as_bytes())
            .unwrap();
        bytes.splice(at..at + 3, [0xe7]);
        let open = || {
            RecipientReader::from_reader(
                Path::new("l.csv"),
                Box::new(std::io::Cursor::new(bytes.clone())),
                &["first_name".to_owned()],
            )
            .unwrap()
            .with_suppression(Arc::clone(&list))
        };
        let (mut rows, mut keys) = (open(), open());
        let mut verdicts = Vec::new();
        while let Some(row) = rows.next_row().unwrap() {
            let key = keys.next_key().unwrap().unwrap();
            let expected = match row {
                Row::Valid(r) => KeyRow::Valid(r.key, None),
                Row::Suppressed(r, reason) => KeyRow::Valid(r.key, Some(reason)),
                // The one verdict of `next_row` that `next_key` leaves to its caller.
                Row::Rejected(e) if e.problem.contains("appears earlier") => {
                    KeyRow::Valid(RecipientKey::of("ok@example.com"), None)
                }
                Row::Rejected(e) => KeyRow::Rejected(e),
            };
            assert_eq!(key, expected);
            verdicts.push(match key {
                KeyRow::Valid(..) => "valid".to_owned(),
                KeyRow::Rejected(e) => format!("{} {:?}", e.line, e.field),
            });
        }
        assert_eq!(keys.next_key().unwrap(), None);
        assert_eq!(
            verdicts,
            [
                "valid",
                "3 Some(\"email\")",
                "4 Some(\"email\")",
                "5 Some(\"email\")",
                "6 None",
                "7 Some(\"first_name\")",
                "valid",
                "11 Some(\"first_name\")",
                "valid",
                "13 Some(\"note\")",
                "14 Some(\"note\")",
                "valid",
                "valid",
                "valid"
            ]
        );
    }
}
