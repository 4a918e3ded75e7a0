//! The reader against lists as people save them: bad rows refused with their line and field,
//! the rest read on.

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

/// Each row's line, and its address or the start of its refusal.
fn outline(csv: &str) -> Vec<(u64, String)> {
    rows(csv)
        .iter()
        .map(|row| match row {
            Ok(r) => (r.line, r.email.to_string()),
            Err(e) => (e.line, e.problem.chars().take(24).collect()),
        })
        .collect()
}

#[test]
fn a_quote_left_open_refuses_its_own_line_and_the_next_lines_are_read_again() {
    for eol in ["\n", "\r\n"] {
        // Closed lines below by a quote that does not end a value, or never closed at all:
        // either way the lines it ran over are rows of their own.
        for (broken, later) in [
            ("\"b@example.com,B", "d@example.com,\"D"),
            ("\"b@x", "d@example.com,D"),
        ] {
            let csv = [
                "email,first_name",
                "a@example.com,A",
                broken,
                "c@example.com,C",
                "not-an-address,X",
                later,
                "e@example.com,E",
            ]
            .join(eol);
            let out = outline(&csv);
            let valid: Vec<&str> = out
                .iter()
                .filter(|(_, text)| text.contains('@'))
                .map(|(_, text)| text.as_str())
                .collect();
            let expected_valid: &[&str] = match later.contains('"') {
                true => &["a@example.com", "c@example.com", "e@example.com"],
                false => &[
                    "a@example.com",
                    "c@example.com",
                    "d@example.com",
                    "e@example.com",
                ],
            };
            assert_eq!(valid, expected_valid, "{broken:?} {eol:?}: {out:?}");
            let lines: Vec<u64> = out.iter().map(|(line, _)| *line).collect();
            let expected_lines: &[u64] = match later.contains('"') {
                true => &[2, 3, 4, 5, 6, 7],
                false => &[2, 3, 4, 5, 6, 7],
            };
            assert_eq!(lines, expected_lines, "{broken:?} {eol:?}: {out:?}");
            assert!(out[1].1.starts_with("a quote opens"), "{out:?}");
        }
    }
}

#[test]
fn a_quote_left_open_on_the_last_lines_is_named_on_its_own_line() {
    let out = outline("email,first_name\na@example.com,A\nb@example.com,\"B\nc@example.com,C\n");
    assert_eq!(
        out.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
        [2, 3, 4],
        "{out:?}"
    );
    assert_eq!(out[2].1, "c@example.com", "{out:?}");
}

/// A reader handing out one byte at a time: records straddle every chunk.
struct Trickle(std::io::Cursor<Vec<u8>>);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let len = buf.len().min(1);
        self.0.read(&mut buf[..len])
    }
}

#[test]
fn a_broken_quote_read_a_byte_at_a_time_is_refused_alike() {
    let csv = "email,first_name\r\na@example.com,A\r\n\"b@example.com,B\r\n\r\nc@example.com,\"C\"\r\nd@x,\"D\r\ne@example.com,E";
    let mut reader = RecipientReader::from_reader(
        Path::new("l.csv"),
        Box::new(Trickle(std::io::Cursor::new(csv.as_bytes().to_vec()))),
        &[],
    )
    .unwrap();
    let mut out = Vec::new();
    while let Some(row) = reader.next_row().unwrap() {
        out.push(match row {
            Row::Valid(r) => format!("{} {}", r.line, r.email),
            Row::Rejected(e) => format!("{} refused", e.line),
            Row::Suppressed(..) => unreachable!(),
        });
    }
    assert_eq!(
        out,
        [
            "2 a@example.com",
            "3 refused",
            "5 c@example.com",
            "6 refused",
            "7 e@example.com"
        ]
    );
}

#[test]
fn a_value_quoted_over_lines_is_still_one_row() {
    let out =
        outline("email,note\na@example.com,\"two\nlines, \"\"quoted\"\"\"\nb@example.com,x\n");
    assert_eq!(
        out,
        [
            (2, "a@example.com".to_owned()),
            (4, "b@example.com".to_owned())
        ]
    );
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
fn a_quote_left_open_in_the_header_is_fatal() {
    let err = RecipientReader::from_reader(
        Path::new("l.csv"),
        Box::new(std::io::Cursor::new(
            b"email,\"name\na@example.com,A\n".to_vec(),
        )),
        &[],
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, RecipientsError::Csv { line: 1, .. }),
        "{err:?}"
    );
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
