//! `missive send --dry-run` with no mailcatcher listening: the embedded capture server takes
//! what a real send would hand a relay, messages larger than the engine's bound on bytes in
//! memory included, and writes each whole as an `.eml` file.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use mail_parser::MessageParser;

use crate::support::harness::{Fixture, Run};
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
