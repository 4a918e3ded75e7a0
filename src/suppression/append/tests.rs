//! The appender against real files, one writer and several.

use super::*;
use crate::suppression::SuppressionList;

fn list(path: &Path) -> SuppressionList {
    SuppressionList::load(&[(Reason::Unsubscribed, path.to_owned())])
        .unwrap()
        .0
}

#[test]
fn creates_the_file_and_writes_each_person_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suppression/unsubscribed.txt");
    let mut appender = Appender::open(&path, Reason::Unsubscribed).unwrap();
    let added = appender
        .add(&["marie@example.com", "Marie@Example.com", "zoe@example.org"])
        .unwrap();
    assert_eq!(added, [true, false, true]);
    assert_eq!(appender.add(&["MARIE@example.com"]).unwrap(), [false]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "marie@example.com\nzoe@example.org\n"
    );
    assert_eq!(list(&path).len(), 2);
}

#[test]
fn sees_what_another_writer_added_and_mends_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.txt");
    std::fs::write(&path, "# unsubscribed\na@example.com").unwrap();
    let mut one = Appender::open(&path, Reason::Unsubscribed).unwrap();
    let mut two = Appender::open(&path, Reason::Unsubscribed).unwrap();
    assert!(one.contains("a@example.com"));
    assert_eq!(one.add(&["b@example.com"]).unwrap(), [true]);
    assert_eq!(
        two.add(&["b@example.com", "c@example.com"]).unwrap(),
        [false, true],
        "the second writer read the first one's line before writing"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "# unsubscribed\na@example.com\nb@example.com\nc@example.com\n"
    );
}

#[test]
fn an_address_whose_write_failed_is_written_by_the_next_add() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.txt");
    let mut appender = Appender::open(&path, Reason::Unsubscribed).unwrap();
    // A handle that cannot write stands for a full disk or an I/O error.
    let writable = std::mem::replace(&mut appender.file, File::open(&path).unwrap());
    assert!(appender.add(&["a@example.com"]).is_err());
    appender.file = writable;
    assert_eq!(appender.add(&["a@example.com"]).unwrap(), [true]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a@example.com\n");
}

#[test]
fn a_csv_list_gets_rows_in_its_email_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.csv");
    std::fs::write(&path, "date,email,code\n2026-01-01,a@example.com,550\n").unwrap();
    let mut appender = Appender::open(&path, Reason::Bounced).unwrap();
    assert_eq!(
        appender.add(&["a@example.com", "b@example.com"]).unwrap(),
        [false, true]
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "date,email,code\n2026-01-01,a@example.com,550\n,b@example.com,\n"
    );
    let loaded = SuppressionList::load(&[(Reason::Bounced, path)]).unwrap().0;
    assert_eq!(loaded.reason("b@example.com"), Some(Reason::Bounced));
}

#[test]
fn concurrent_writers_in_threads_write_each_address_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.txt");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut appender = Appender::open(&path, Reason::Unsubscribed).unwrap();
                for i in 0..50 {
                    // Every thread writes the even addresses; each its own odd ones.
                    let shared = format!("p{}@example.com", i * 2);
                    let own = format!("t{t}-{i}@example.com");
                    appender.add(&[&shared, &own]).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let distinct: HashSet<&str> = lines.iter().copied().collect();
    assert_eq!(lines.len(), 50 + 4 * 50, "{text}");
    assert_eq!(distinct.len(), lines.len(), "no address twice");
}
