//! The send log's consent: the log a run is given is used whatever its name, and a file that is
//! not a send log is left as it was. Each test counts what the SMTP server received.

mod support;

use std::time::Duration;

use support::harness::{Fixture, people};
use support::smtp_server::{Behavior, SmtpServer};

const SETTLE: Duration = Duration::from_millis(300);

/// Everyone the server received, sorted, with repeats.
fn received(server: &SmtpServer) -> Vec<String> {
    std::thread::sleep(SETTLE);
    let mut rcpts: Vec<String> = server
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    rcpts.sort();
    rcpts
}

fn person(i: usize) -> String {
    format!("person{i:02}@example.com")
}

fn everyone(n: usize) -> Vec<String> {
    (1..=n).map(person).collect()
}

#[test]
fn a_log_named_like_a_lock_is_kept_byte_for_byte_and_resumed() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(5), "");
    let log = fixture.path("envoi.lock");
    let log_arg = log.to_str().unwrap();
    let run = fixture.send(&server.url(), &["--log", log_arg, "--max-messages", "2"]);
    assert_eq!(run.code, 75, "{}", run.all());
    assert_eq!(received(&server).len(), 2);
    let before = std::fs::read(&log).unwrap();

    // A run that only opens the log (and takes its lock) leaves it as it was.
    let run = fixture.send(&server.url(), &["--log", log_arg, "--max-messages", "0"]);
    assert_eq!(run.code, 75, "{}", run.all());
    let after = std::fs::read(&log).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&after),
        String::from_utf8_lossy(&before),
        "the log is unchanged by taking its lock"
    );

    let run = fixture.send(&server.url(), &["--log", log_arg]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(received(&server), everyone(5), "everyone once");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with(&String::from_utf8_lossy(&before).into_owned()),
        "the log only grew"
    );
    assert_eq!(text.matches(r#""event":"sent""#).count(), 5, "{text}");
}

#[test]
fn a_file_that_is_not_a_send_log_is_refused_and_left_as_it_was() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(3), "");
    let notes = fixture.path("notes.txt");
    let text = "Réunion lundi 9h, apporter les listes";
    std::fs::write(&notes, text).unwrap();
    let run = fixture.send(&server.url(), &["--log", notes.to_str().unwrap()]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("notes.txt") && run.stderr.contains("not a send log"),
        "{}",
        run.all()
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), text);
    assert!(received(&server).is_empty(), "nothing sent");
    let status = fixture.command("status", &["--log", notes.to_str().unwrap()]);
    assert_eq!(status.code, 65, "{}", status.all());
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), text);
}

#[test]
fn a_last_sent_record_without_its_newline_is_kept_and_its_person_not_mailed_again() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(3), "");
    assert_eq!(fixture.send(&server.url(), &[]).code, 0);
    assert_eq!(received(&server), everyone(3));
    // The newline of the last record was lost (a crash between the record and its newline).
    let log = fixture.log_path();
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    assert!(last.contains(r#""event":"sent""#), "{text}");
    std::fs::write(&log, text.trim_end_matches('\n')).unwrap();

    // One more person in the list: only they are mailed.
    fixture.write(
        "recipients/list.csv",
        &people(4), // person01..04
    );
    let second = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&second.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(received(&second), [person(4)], "{}", run.all());
    // The missing newline was written before the new records: one record a line.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(&format!("{last}\n")), "{text}");
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert_eq!(text.matches(r#""event":"sent""#).count(), 4, "{text}");
}
