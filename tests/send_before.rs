//! `send_before`: past it a run mails nobody and exits 0, and `status` counts those never
//! attempted as expired; a run that crosses it finishes the messages in hand and stops handing
//! over more; a deferred message whose retry would come too late is given up (failed). Judged
//! on what a real SMTP server received, the send log and `status`.

use std::time::{Duration, SystemTime};

use crate::support::harness::{Fixture, people};
use crate::support::smtp_server::{Behavior, SmtpServer};

fn send_before(at: SystemTime) -> String {
    format!(
        "send_before = \"{}\"\n",
        humantime::format_rfc3339_millis(at)
    )
}

#[test]
fn past_send_before_nobody_is_mailed_and_everyone_has_expired() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(4), "send_before = \"2020-01-01T00:00:00Z\"\n");
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("send_before"), "{}", run.all());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.journal().rcpt_commands.len(), 0, "{}", run.all());
    assert!(server.messages().is_empty());

    let status = fixture.status();
    assert_eq!(status["expired"], 4, "{status}");
    assert_eq!(status["pending"], 0, "{status}");
    assert_eq!(status["sent"], 0, "{status}");
    assert_eq!(status["send_before"], "2020-01-01T00:00:00Z", "{status}");
    let text = fixture.command("status", &[]);
    assert!(
        text.stdout.contains("send_before 2020-01-01"),
        "{}",
        text.all()
    );
    let check = fixture.command("check", &[]);
    assert!(
        check.stdout.contains("send_before 2020-01-01T00:00:00Z")
            && check.stdout.contains("already past"),
        "{}",
        check.all()
    );
}

#[test]
fn a_run_crossing_send_before_stops_handing_over_and_the_rest_expire() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    // 30 people at 5 a second: 6 s of sending, cut off after about 2.
    let before = SystemTime::now() + Duration::from_secs(2);
    let extra = format!("{}[smtp]\nrate = 5\nburst = 1\n", send_before(before));
    let fixture = Fixture::new(&people(30), &extra);
    let run = fixture.send(&server.url(), &[]);
    let ended = SystemTime::now();
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("expired"), "{}", run.all());
    assert!(
        // The workers waiting their turn in the pace do not each hold the end a slot.
        ended.duration_since(before).unwrap_or_default() < Duration::from_millis(500),
        "the run went on {:?} past send_before",
        ended.duration_since(before)
    );
    std::thread::sleep(Duration::from_millis(300));
    let received = server.messages();
    let sent = received.len() as u64;
    // About 10 at 5 a second for 2 s; the first ones before connecting, the pace's slack.
    assert!((5..=16).contains(&sent), "{sent} received\n{}", run.all());

    let status = fixture.status();
    assert_eq!(status["sent"], sent, "{status}");
    assert_eq!(status["expired"], 30 - sent, "{status}");
    assert_eq!(status["pending"], 0, "{status}");
    // The log agrees: one `sent` record per message received, for the people received.
    let records = fixture.log_records();
    let logged: std::collections::BTreeSet<String> = records
        .iter()
        .filter(|r| r["event"] == "sent")
        .map(|r| r["rcpt"].as_str().unwrap().to_owned())
        .collect();
    let got: std::collections::BTreeSet<String> =
        received.iter().map(|m| m.rcpt_to[0].clone()).collect();
    assert_eq!(logged, got);

    // A second run, after it: nothing more.
    let again = fixture.send(&server.url(), &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.messages().len() as u64, sent, "{}", again.all());
    assert_eq!(fixture.status()["expired"], 30 - sent);
}

#[test]
fn a_deferred_message_whose_retry_comes_after_send_before_is_given_up() {
    let server = SmtpServer::start_in_background(Behavior::accept_all().rcpt_reply(|address| {
        (address == "person02@example.com").then(|| (451, "4.3.0 try later".to_owned()))
    }));
    // The retry would come in two hours; send_before is in one.
    let before = SystemTime::now() + Duration::from_secs(3600);
    let extra = format!("{}[retry]\nfirst_delay = \"2h\"\n", send_before(before));
    let fixture = Fixture::new(&people(3), &extra);
    let run = fixture.send(&server.url(), &[]);
    // Refused for now, with a retry that would come too late: failed at once, and done.
    assert_eq!(run.code, 0, "{}", run.all());
    let status = fixture.status();
    assert_eq!(
        (status["sent"].as_u64(), status["failed"].as_u64()),
        (Some(2), Some(1)),
        "{status}"
    );
    assert_eq!(status["deferred"], 0, "{status}");
    assert_eq!(status["expired"], 0, "{status}");
    let failed: Vec<_> = fixture
        .log_records()
        .into_iter()
        .filter(|r| r["event"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["rcpt"], "person02@example.com");
    assert!(
        failed[0]["reply"].as_str().unwrap().contains("send_before"),
        "{failed:?}"
    );
    assert_eq!(server.journal().rcpt_count("person02@example.com"), 1);
    let again = fixture.send(&server.url(), &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(server.journal().rcpt_count("person02@example.com"), 1);
}

#[test]
fn a_message_deferred_before_send_before_is_given_up_by_the_run_after_it() {
    let server = SmtpServer::start_in_background(Behavior::accept_all().rcpt_reply(|address| {
        (address == "person01@example.com").then(|| (451, "4.3.0 try later".to_owned()))
    }));
    // The retry is due in a second, before send_before, which passes before the next run.
    let before = SystemTime::now() + Duration::from_secs(3);
    let extra = format!(
        "{}[retry]\nfirst_delay = \"1s\"\nmax_delay = \"1s\"\n",
        send_before(before)
    );
    let fixture = Fixture::new(&people(2), &extra);
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 75, "{}", run.all());
    assert_eq!(fixture.status()["deferred"], 1);
    std::thread::sleep(before.duration_since(SystemTime::now()).unwrap_or_default());
    let again = fixture.send(&server.url(), &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(server.journal().rcpt_count("person01@example.com"), 1);
    let status = fixture.status();
    assert_eq!(
        (
            status["sent"].as_u64(),
            status["failed"].as_u64(),
            status["deferred"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{status}"
    );
}
