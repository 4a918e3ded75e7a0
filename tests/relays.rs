//! The fallback relay (plan B) and reconnection: what each server received.

use std::time::Duration;

use crate::support::harness::{Fixture, people};
use crate::support::smtp_server::{Behavior, SmtpServer};

const WAIT: Duration = Duration::from_secs(10);

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn the_fallback_takes_over_while_the_primary_is_unreachable() {
    let fallback = SmtpServer::start_in_background(Behavior::accept_all());
    let extra = format!(
        "[smtp]\nurl = \"smtp://127.0.0.1:{}\"\npool_size = 2\n[fallback]\nurl = \"{}\"\n",
        closed_port(),
        fallback.url()
    );
    let fixture = Fixture::new(&people(4), &extra);
    let run = fixture.command("send", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("4 through the fallback relay"),
        "{}",
        run.all()
    );
    assert_eq!(fallback.wait_for(4, WAIT).len(), 4);
    let via: Vec<_> = fixture
        .log_records()
        .into_iter()
        .filter(|r| r["event"] == "sent")
        .map(|r| r["via"].clone())
        .collect();
    assert_eq!(via, vec![serde_json::json!("fallback"); 4]);
    let status: serde_json::Value =
        serde_json::from_str(&fixture.command("status", &["--json"]).stdout).unwrap();
    assert_eq!(status["sent_via_fallback"], 4);
}

#[test]
fn the_primary_gets_the_traffic_back_when_it_answers_again() {
    // The primary is busy (421) for its first connection only.
    let primary = SmtpServer::start_in_background(Behavior::accept_all().greeting_421_for_first(1));
    let fallback = SmtpServer::start_in_background(Behavior::accept_all());
    let extra = format!(
        "[smtp]\nurl = \"{}\"\npool_size = 1\nrate = 5\n[fallback]\nurl = \"{}\"\nretry_primary_after = \"1s\"\n",
        primary.url(),
        fallback.url()
    );
    let fixture = Fixture::new(&people(10), &extra);
    let run = fixture.command("send", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let (to_fallback, to_primary) = (fallback.messages(), primary.messages());
    assert_eq!(to_fallback.len() + to_primary.len(), 10, "{}", run.all());
    assert!(
        !to_fallback.is_empty() && !to_primary.is_empty(),
        "{}",
        run.all()
    );
    // The fallback carried the start of the list, the primary the end.
    let last = &to_primary.last().unwrap().rcpt_to[0];
    assert_eq!(last, "person10@example.com");
    assert_eq!(to_fallback[0].rcpt_to[0], "person01@example.com");
}

#[test]
fn a_busy_greeting_is_retried_on_a_new_connection() {
    let server = SmtpServer::start_in_background(Behavior::accept_all().greeting_421_for_first(2));
    let fixture = Fixture::new(&people(3), "[smtp]\npool_size = 1\n");
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(server.wait_for(3, WAIT).len(), 3);
    assert_eq!(
        server.connections(),
        3,
        "two refused greetings, then one connection for all"
    );
    let deferred = fixture
        .log_records()
        .iter()
        .filter(|r| r["event"] != "attempt" && r["event"] != "sent")
        .count();
    assert_eq!(deferred, 0, "a busy server defers no recipient");
}
