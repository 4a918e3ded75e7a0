//! `missive send --dry-run` shows what the real send would do now: with no mailcatcher
//! listening, the embedded capture server takes what a real send would hand a relay, messages
//! larger than the engine's bound on bytes in memory included, and writes each whole as an
//! `.eml` file; with a window read in each person's own time zone, only those whose window is
//! open now are mailed, and the run says who waits, as the real send would.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use jiff::{Timestamp, tz::TimeZone};
use mail_parser::MessageParser;

use crate::support::harness::{Fixture, Run};
use crate::support::smtp_server::{Behavior, SmtpServer};
use crate::support::wait_or_kill;

/// `missive send CAMPAIGN --dry-run [more…]`, killed past `limit` (a hang is a failure, never a
/// stuck test): its exit code and what it printed.
fn dry_run(fixture: &Fixture, more: &[&str], limit: Duration) -> Run {
    let stdout = fixture.path("dry-run.stdout");
    let stderr = fixture.path("dry-run.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["send", fixture.campaign().to_str().unwrap(), "--dry-run"])
        .args(more)
        .current_dir(std::env::temp_dir())
        .env_remove("MISSIVE_SMTP_PASSWORD")
        .env_remove("MISSIVE_UNSUBSCRIBE_SECRET")
        .env_remove("MISSIVE_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start missive");
    let (status, hung) = match wait_or_kill(&mut child, limit) {
        Ok(status) => (status, false),
        Err(status) => (status, true),
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(stdout).unwrap(),
        stderr: std::fs::read_to_string(stderr).unwrap(),
    };
    assert!(!hung, "the dry run hangs: {}", run.all());
    run
}

/// A `[dry_run]` section whose mailcatcher nobody listens on, so the capture server takes over,
/// writing into `boite/`.
fn no_mailcatcher() -> String {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    format!("[dry_run]\nsmtp = \"smtp://127.0.0.1:{closed}\"\noutbox = \"boite\"\n")
}

/// The `.eml` files of the one outbox folder the dry run made, sorted by name.
fn captured(fixture: &Fixture) -> Vec<PathBuf> {
    let outboxes: Vec<_> = std::fs::read_dir(fixture.path("boite"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(outboxes.len(), 1, "one outbox folder");
    let mut files: Vec<_> = std::fs::read_dir(outboxes[0].path())
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    files.sort();
    files
}

/// Bytes no text encoding would keep.
fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn messages_larger_than_the_bytes_in_memory_are_captured_whole() {
    // A 28 MB receipt makes a message of about 38 MB, past the 32 MB the engine holds in
    // memory at once: a real send takes it (tests/attachments.rs), and so must the capture.
    let sizes = [1_000, 28 << 20, 1_000, 28 << 20, 1_000];
    let mut csv = String::from("email,first_name,last_name,amount,receipt\n");
    for i in 1..=sizes.len() {
        csv.push_str(&format!("person{i}@example.com,P{i},N,10,reçus/p{i}.pdf\n"));
    }
    let settings = format!("attachment_column = \"receipt\"\n{}", no_mailcatcher());
    let fixture = Fixture::new(&csv, &settings);
    std::fs::create_dir_all(fixture.path("reçus")).unwrap();
    for (i, size) in (1..).zip(sizes) {
        std::fs::write(fixture.path(&format!("reçus/p{i}.pdf")), binary(size)).unwrap();
    }
    let run = dry_run(&fixture, &[], Duration::from_secs(120));
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("5 message(s) captured") && !run.stdout.contains("in doubt"),
        "{}",
        run.all()
    );
    let files = captured(&fixture);
    assert_eq!(files.len(), 5, "{files:?}");
    let mut large = 0;
    for (file, size) in files.iter().zip(sizes) {
        let message = std::fs::read(file).unwrap();
        let parsed = MessageParser::default().parse(&message).unwrap();
        let receipt = parsed.attachment(0).expect("the receipt");
        assert_eq!(receipt.contents(), binary(size), "{}", file.display());
        large += usize::from(message.len() > 32 << 20);
    }
    assert_eq!(large, 2, "both large messages whole");
}

#[test]
fn a_window_in_each_persons_zone_is_ignored_and_said_so_everyone_is_captured() {
    let catcher = SmtpServer::start_in_background(Behavior::accept_all());
    // From the current hour (UTC) for two hours, every day: open now in UTC, closed now six
    // hours ahead (near midnight the window ends at 24:00 rather than run over it).
    let hour = Timestamp::now().to_zoned(TimeZone::UTC).hour();
    let hours = match hour {
        22 | 23 => format!("{hour:02}:00-24:00"),
        _ => format!("{hour:02}:00-{:02}:00", hour + 2),
    };
    let settings = format!(
        "[window]\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\n\
         hours = \"{hours}\"\ntime_zone = \"UTC\"\ntime_zone_column = \"fuseau\"\n"
    );
    let csv = "email,first_name,last_name,amount,fuseau\n\
               here@example.com,Ici,Nom,10,UTC\n\
               ahead@example.com,Devant,Nom,10,Etc/GMT-6\n\
               blank@example.com,Vide,Nom,10,\n";
    let fixture = Fixture::new(csv, &settings);
    let run = dry_run(
        &fixture,
        &["--smtp", &catcher.url()],
        Duration::from_secs(30),
    );

    // A rehearsal shows every message before the real send, whatever the hour: everyone is
    // captured, and the run says the window is ignored and what the real send does instead.
    assert_eq!(run.code, 0, "{}", run.all());
    let mut to: Vec<_> = catcher
        .wait_for(3, Duration::from_secs(10))
        .iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["ahead@example.com", "blank@example.com", "here@example.com"],
        "{}",
        run.all()
    );
    let said = run
        .stdout
        .lines()
        .find(|line| line.contains("the sending window"))
        .unwrap_or_else(|| panic!("the window is said to be ignored: {}", run.all()));
    assert!(
        said.contains("ignored and everyone is captured") && said.contains("column `fuseau`"),
        "{said}"
    );
    assert!(!run.stdout.contains("wait for"), "{}", run.all());
    assert!(!fixture.log_path().exists(), "a dry run keeps no send log");
}
