//! SIGTERM (and SIGINT) mid-run: the run stops taking recipients, finishes the messages in
//! hand, syncs the log and exits 75; the next run finishes the list, nobody twice.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::harness::{Fixture, people};
use support::smtp_server::{Behavior, SmtpServer};

#[test]
fn sigterm_finishes_the_messages_in_hand_and_the_next_run_the_rest() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(40), "[smtp]\nrate = 10\n");
    let campaign = fixture.campaign();
    let child = Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["send", campaign.to_str().unwrap(), "--smtp", &server.url()])
        .env_remove("MISSIVE_SMTP_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let a few messages through, then ask it to stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.messages().len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("stopped: interrupted"),
        "{stdout}\n{stderr}"
    );

    std::thread::sleep(Duration::from_millis(200));
    let received = server.messages().len();
    assert!(received < 40, "it stopped early: {received}");
    // Every message handed over got its outcome logged: nothing in doubt.
    let status: serde_json::Value =
        serde_json::from_str(&fixture.command("status", &["--json"]).stdout).unwrap();
    assert_eq!(status["in_doubt"], 0, "{status}");
    assert_eq!(status["sent"].as_u64(), Some(received as u64), "{status}");
    assert_eq!(status["pending"].as_u64(), Some(40 - received as u64));

    let run = fixture.send(&server.url(), &["--rate", "200"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let messages = server.wait_for(40, Duration::from_secs(10));
    let mut rcpts: Vec<_> = messages.iter().map(|m| m.rcpt_to[0].clone()).collect();
    rcpts.sort();
    rcpts.dedup();
    assert_eq!((messages.len(), rcpts.len()), (40, 40), "everyone once");
}
