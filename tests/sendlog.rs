//! The send log's consent: the log a run is given is used only when it is this campaign's log,
//! whatever its name; a file that is not a send log is left as it was; and a campaign keeps to
//! the log it has been sending with. Each test counts what the SMTP server received.

use std::time::Duration;

use crate::support::harness::{Fixture, RUN_LIMIT, people};
use crate::support::smtp_server::{Behavior, SmtpServer};

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

/// The fixture's campaign under another id.
fn other_campaign(csv: &str, id: &str) -> Fixture {
    let fixture = Fixture::new(csv, "");
    let text = std::fs::read_to_string(fixture.campaign()).unwrap();
    fixture.write("campaign.toml", &text.replace("essai-2026", id));
    fixture
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

#[test]
fn a_log_of_another_campaign_is_refused_and_nothing_is_sent() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let first = Fixture::new(&people(3), "");
    assert_eq!(first.send(&server.url(), &[]).code, 0);
    let log = first.log_path();
    let before = std::fs::read(&log).unwrap();
    assert!(
        String::from_utf8_lossy(&before)
            .lines()
            .next()
            .unwrap()
            .contains(r#""event":"campaign","campaign":"essai-2026""#),
        "the log names its campaign first"
    );

    let other = other_campaign(&people(3), "autre-2026");
    let second = SmtpServer::start_in_background(Behavior::accept_all());
    let run = other.send(&second.url(), &["--log", log.to_str().unwrap()]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("essai-2026") && run.stderr.contains("autre-2026"),
        "{}",
        run.all()
    );
    assert!(received(&second).is_empty(), "nothing sent");
    assert_eq!(std::fs::read(&log).unwrap(), before);
    // `--new-log` does not make another campaign's log this one's.
    let run = other.send(
        &second.url(),
        &["--log", log.to_str().unwrap(), "--new-log"],
    );
    assert_eq!(run.code, 65, "{}", run.all());
    let status = other.command("status", &["--log", log.to_str().unwrap()]);
    assert_eq!(status.code, 65, "{}", status.all());
    assert!(status.stderr.contains("autre-2026"), "{}", status.all());
    assert!(received(&second).is_empty(), "nothing sent");
}

#[test]
fn a_log_from_before_logs_named_their_campaign_is_accepted_with_a_warning() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(3), "");
    fixture.write(
        "essai-2026.sendlog.jsonl",
        &format!(
            "{{\"at\":\"2026-01-01T00:00:00Z\",\"event\":\"sent\",\"reply\":\"250 ok\",\"rcpt\":\"{}\",\"message_id\":\"<x>\"}}\n",
            person(1)
        ),
    );
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        run.stderr.matches("does not name its campaign").count(),
        1,
        "warned once: {}",
        run.all()
    );
    assert_eq!(received(&server), [person(2), person(3)]);
}

#[test]
fn a_different_log_after_sending_began_is_refused_unless_new_log() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(3), "");
    // A dry run holds nothing and records nothing.
    let catcher = SmtpServer::start_in_background(Behavior::accept_all());
    assert_eq!(fixture.send(&catcher.url(), &["--dry-run"]).code, 0);
    assert!(!fixture.path("essai-2026.state.json").exists());
    assert!(!fixture.path("essai-2026.lock").exists());

    let run = fixture.send(&server.url(), &["--max-messages", "1"]);
    assert_eq!(run.code, 75, "{}", run.all());
    assert_eq!(received(&server).len(), 1);

    // A typo in --log, a new folder: refused, and nothing is created there.
    let typo = fixture.path("nouveau/essai-2026.sendlog.jsonl");
    std::fs::create_dir_all(typo.parent().unwrap()).unwrap();
    let run = fixture.send(&server.url(), &["--log", typo.to_str().unwrap()]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("--new-log") && run.stderr.contains("essai-2026.sendlog.jsonl"),
        "{}",
        run.all()
    );
    assert!(!typo.exists());
    assert_eq!(received(&server).len(), 1, "nothing more sent");
    // The campaign's own log goes on, wherever the command is run from.
    let run = fixture.send(
        &server.url(),
        &[
            "--log",
            fixture.log_path().to_str().unwrap(),
            "--max-messages",
            "1",
        ],
    );
    assert_eq!(run.code, 75, "{}", run.all());
    assert_eq!(received(&server).len(), 2);

    // Said to be meant: the new log goes, and everyone it does not list is mailed.
    let run = fixture.send(
        &server.url(),
        &["--log", typo.to_str().unwrap(), "--new-log"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(received(&server).len(), 2 + 3);
    // From then on the new log is the campaign's: the old one is refused in turn, and
    // without --log, send and status take the new one.
    let old_log = fixture.log_path();
    let run = fixture.send(&server.url(), &["--log", old_log.to_str().unwrap()]);
    assert_eq!(run.code, 65, "{}", run.all());
    let run = fixture.send(&server.url(), &["--log", typo.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(received(&server).len(), 5, "nothing more sent");
    let status = fixture.command("status", &["--json"]);
    assert_eq!(status.code, 0, "{}", status.all());
    let counts: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        (counts["sent"].as_u64(), counts["pending"].as_u64()),
        (Some(3), Some(0))
    );
}

#[test]
fn a_log_deleted_or_emptied_after_sending_began_is_refused_unless_new_log() {
    // The operator who deletes a log that looked damaged, a rotation that truncates it: a new
    // log would find nobody done.
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(3), "");
    assert_eq!(fixture.send(&server.url(), &[]).code, 0);
    assert_eq!(received(&server).len(), 3);
    let log = fixture.log_path();
    let remove = |log: &std::path::Path| std::fs::remove_file(log).unwrap();
    let empty = |log: &std::path::Path| std::fs::write(log, "").unwrap();
    for (problem, damage) in [("missing", &remove as &dyn Fn(&_)), ("empty", &empty)] {
        damage(&log);
        let run = fixture.send(&server.url(), &[]);
        assert_eq!(run.code, 65, "{problem}: {}", run.all());
        assert!(
            run.stderr.contains(problem) && run.stderr.contains("--new-log"),
            "{}",
            run.all()
        );
        assert_eq!(received(&server).len(), 3, "{problem}: nothing sent again");
        if problem == "missing" {
            let status = fixture.command("status", &[]);
            assert_eq!(status.code, 65, "{}", status.all());
        }
    }
    // Said to be meant: everyone on the list is mailed again.
    let run = fixture.send(&server.url(), &["--new-log"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(received(&server).len(), 6);
}

#[test]
fn the_state_s_staging_name_is_never_taken_as_the_log() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(2), "");
    let staging = fixture.path("essai-2026.state.json.new");
    let run = fixture.send(
        &server.url(),
        &["--log", staging.to_str().unwrap(), "--new-log"],
    );
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(received(&server).is_empty());
    assert!(!staging.exists());
}

#[test]
fn two_sends_of_one_campaign_with_different_logs_do_not_run_at_once() {
    let server = SmtpServer::start_in_background(
        Behavior::accept_all().reply_delay(Duration::from_millis(50)),
    );
    let fixture = Fixture::new(&people(20), "[smtp]\npool_size = 1\n");
    let first = fixture.start_send(&server.url(), &[]);
    assert!(server.wait_until(RUN_LIMIT, |j| j.accepted().count() >= 1));
    let other = fixture.path("autre.sendlog.jsonl");
    let run = fixture.send(
        &server.url(),
        &["--log", other.to_str().unwrap(), "--new-log"],
    );
    assert_eq!(run.code, 75, "{}", run.all());
    assert!(
        run.stderr
            .contains("campaign essai-2026 is being sent by another missive run (process"),
        "{}",
        run.all()
    );
    let first = first
        .wait(RUN_LIMIT)
        .unwrap_or_else(|run| panic!("{}", run.all()));
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(received(&server), everyone(20), "everyone once");
    assert!(!other.exists());
}
