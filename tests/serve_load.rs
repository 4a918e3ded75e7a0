//! `missive serve` under many clicks at once: a thousand people for a thousand distinct
//! addresses while a `send` of the same campaign runs (each lands once, the send goes on, the
//! next run honours them), and two endpoints appending to one file (no line torn or repeated).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::http::{SECRET, Serving, campaign, one_click, runtime, target, unsubscribed};
use crate::support::smtp_server::{Behavior, SmtpServer};
use crate::support::wait_or_kill;

#[test]
fn a_thousand_people_click_at_once_while_a_send_runs_and_each_lands_once() {
    const PEOPLE: usize = 1200;
    const CLICKS: usize = 1000;
    let fixture = campaign(PEOPLE);
    let smtp = SmtpServer::start_in_background(Behavior::accept_all());
    let serving = Serving::start(&[&fixture.campaign()]);
    let mut send = Command::new(env!("CARGO_BIN_EXE_missive"))
        .args([
            "send",
            fixture.campaign().to_str().unwrap(),
            "--smtp",
            &smtp.url(),
        ])
        .args(["--rate", "200"])
        .env("MISSIVE_UNSUBSCRIBE_SECRET", SECRET)
        .env_remove("MISSIVE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The send has read the (empty) list and is under way.
    assert!(smtp.wait_until(Duration::from_secs(30), |j| !j.received.is_empty()));
    let addresses: Vec<String> = (1..=CLICKS)
        .map(|i| format!("person{i:02}@example.com"))
        .collect();
    let statuses = runtime().block_on(async {
        let tasks: Vec<_> = addresses
            .iter()
            .map(|address| {
                let (addr, target) = (serving.addr, target(address));
                tokio::spawn(async move { one_click(addr, &target).await.status })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // The clicks came while the send was going on (1,200 messages at 200 a second).
    assert!(
        send.try_wait().unwrap().is_none(),
        "the send was still running"
    );
    let text = unsubscribed(&fixture);
    assert!(text.ends_with('\n'));
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), CLICKS, "each once");
    lines.sort_unstable();
    let mut expected: Vec<&str> = addresses.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(lines, expected);

    // The send kept working: everyone mailed once, and it finished.
    let status = wait_or_kill(&mut send, Duration::from_secs(60)).expect("the send finishes");
    assert_eq!(status.code(), Some(0));
    let journal = smtp.journal();
    assert_eq!(journal.accepted().count(), PEOPLE);
    // The next run honours what was added.
    let check = fixture.command("check", &[]);
    assert!(
        check
            .stdout
            .contains(&format!("{} recipient(s) ready", PEOPLE - CLICKS)),
        "{}",
        check.all()
    );
    assert!(
        check.stdout.contains(&format!("{CLICKS} suppressed")),
        "{}",
        check.all()
    );
}

#[test]
fn two_endpoints_sharing_one_file_never_tear_or_repeat_a_line() {
    let fixture = campaign(2);
    let first = Serving::start(&[&fixture.campaign()]);
    let second = Serving::start(&[&fixture.campaign()]);
    // Everyone clicks on both, at once: 300 people, 600 requests.
    let addresses: Vec<String> = (1..=300)
        .map(|i| format!("shared{i}@example.com"))
        .collect();
    runtime().block_on(async {
        let mut tasks = Vec::new();
        for address in &addresses {
            for addr in [first.addr, second.addr] {
                let target = target(address);
                tasks.push(tokio::spawn(async move {
                    one_click(addr, &target).await.status
                }));
            }
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 200);
        }
    });
    let text = unsubscribed(&fixture);
    assert!(text.ends_with('\n'), "no line cut short");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    let repeated: Vec<&str> = lines
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    assert!(
        repeated.is_empty(),
        "{} lines written twice: {repeated:?}",
        repeated.len()
    );
    let mut expected: Vec<&str> = addresses.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(lines, expected, "whole lines, each once");
}
