//! SIGTERM (and SIGINT) mid-run: the run stops taking recipients, finishes the messages in
//! hand, syncs the log and exits 75; the next run finishes the list, nobody twice. And a pipe
//! closed early ends a command quietly, as it ends `cat`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::harness::{Fixture, people};
use crate::support::smtp_server::{Behavior, SmtpServer};
use crate::support::wait_or_kill;

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

/// The second signal does not wait for the messages in hand: missive exits 75 at once, and
/// what it had handed over without a reply is in doubt, which the next run sends again with
/// the same Message-ID.
#[test]
fn a_second_signal_stops_at_once_and_the_next_run_resends_what_was_in_doubt() {
    const HELD: Duration = Duration::from_secs(20);
    let slow = SmtpServer::start_in_background(Behavior::accept_all().reply_delay(HELD));
    let fixture = Fixture::new(&people(3), "[smtp]\npool_size = 1\ntimeout_secs = 60\n");
    let campaign = fixture.campaign();
    let stderr_path = fixture.path("send.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["send", campaign.to_str().unwrap(), "--smtp", &slow.url()])
        .env_remove("MISSIVE_SMTP_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let signal = |name: &str| {
        let sent = Command::new("kill")
            .args([name, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    // The first message is on the server, which holds its reply back.
    assert!(
        slow.wait_until(Duration::from_secs(10), |j| !j.received.is_empty()),
        "the first message never reached the server"
    );
    signal("-INT");
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stderr().contains("signal received") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(stderr().contains("signal received"), "{}", stderr());
    let second = Instant::now();
    signal("-TERM");
    let _ = wait_or_kill(&mut child, Duration::from_secs(10));
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        second.elapsed() < HELD / 2,
        "it waited for the reply: {:?}\n{stdout}\n{}",
        second.elapsed(),
        stderr()
    );
    assert_eq!(output.status.code(), Some(75), "{stdout}\n{}", stderr());
    assert!(stderr().contains("second signal"), "{}", stderr());
    // Stopped before the run could report: no message's outcome is known.
    assert!(!stdout.contains("stopped:"), "{stdout}");
    let status = fixture.status();
    assert_eq!(status["sent"], 0, "{status}");
    assert!(status["in_doubt"].as_u64() >= Some(1), "{status}");

    let fast = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&fast.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let messages = fast.wait_for(3, Duration::from_secs(10));
    let mut rcpts: Vec<_> = messages.iter().map(|m| m.rcpt_to[0].clone()).collect();
    rcpts.sort();
    rcpts.dedup();
    assert_eq!((messages.len(), rcpts.len()), (3, 3), "everyone once");
    let held = &slow.messages()[0];
    let again = messages
        .iter()
        .find(|m| m.rcpt_to == held.rcpt_to)
        .expect("the message in hand was sent again");
    assert_eq!(
        message_id(&again.data),
        message_id(&held.data),
        "the same Message-ID"
    );
}

fn message_id(data: &[u8]) -> Option<String> {
    mail_parser::MessageParser::default()
        .parse(data)
        .and_then(|m| m.message_id().map(str::to_owned))
}

/// At a slow pace, the connections wait their turn for their next message. SIGTERM used to
/// leave them waiting it out, each then sending one more message: a run told to stop went on
/// mailing people for minutes (at a message a minute), or never stopped at all. A message
/// waiting for its turn is not in hand: it is withdrawn, pending for the next run, at once.
#[test]
fn sigterm_ends_the_wait_for_the_pace_and_sends_nothing_more() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(
        &people(10),
        "[smtp]\nrate = 0.1\nburst = 1\npool_size = 3\n",
    );
    let campaign = fixture.campaign();
    let mut child = Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["send", campaign.to_str().unwrap(), "--smtp", &server.url()])
        .env_remove("MISSIVE_SMTP_PASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(server.wait_for(1, Duration::from_secs(10)).len(), 1);
    // The other connections are open and waiting their turn.
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_or_kill(&mut child, Duration::from_secs(30));
    let took = signalled.elapsed();
    assert_eq!(status.map(|s| s.code()), Ok(Some(75)), "after {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "it stopped {took:?} after SIGTERM"
    );
    assert_eq!(server.messages().len(), 1, "messages after SIGTERM");
    let status: serde_json::Value =
        serde_json::from_str(&fixture.command("status", &["--json"]).stdout).unwrap();
    assert_eq!(
        (&status["sent"], &status["pending"]),
        (&1.into(), &9.into()),
        "{status}"
    );
}

#[test]
fn output_to_a_pipe_closed_early_ends_the_command_quietly_without_a_panic() {
    let fixture = Fixture::new(&people(3), "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_missive"))
        .arg("status")
        .arg(fixture.campaign())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start missive");
    // Closed before it prints (loading the campaign takes it longer): `missive status | true`.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        output.status.code(),
        Some(141),
        "{:?} {stderr}",
        output.status
    );
}
