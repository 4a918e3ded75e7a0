//! SMTP-time refusals in `send`: the addresses a server refuses as dead mailboxes (`550 5.1.1`
//! to RCPT or to the message) go to the campaign's `bounced` list, and the next campaign sharing
//! it does not mail them; policy refusals (`5.7.1`) and refusals of the sender do not. The send
//! log's outcome stays `failed` with the reply. `status` counts who is on which list.

use std::time::Duration;

use crate::support::harness::{Fixture, people};
use crate::support::smtp_server::{Behavior, Fault, SmtpServer};

const WAIT: Duration = Duration::from_secs(10);
const BOUNCED: &str = "suppression/bounced.txt";

/// Refuses person02 and person05 as unknown at RCPT, person07 as unknown after the message, and
/// person04 for policy; takes the rest.
fn refusing_server(behavior: Behavior) -> SmtpServer {
    SmtpServer::start_in_background(
        behavior
            .rcpt_reply(|address| match address {
                "person02@example.com" | "person05@example.com" => Some((
                    550,
                    "5.1.1 <x>: Recipient address rejected: User unknown in local recipient table"
                        .into(),
                )),
                "person04@example.com" => Some((
                    550,
                    "5.7.1 Message rejected as spam by Content Filtering".into(),
                )),
                _ => None,
            })
            .on_data_end(|address, _| {
                (address == "person07@example.com").then(|| {
                    Fault::reply(
                        550,
                        "5.1.1 The email account that you tried to reach does not exist",
                    )
                })
            }),
    )
}

fn lines(fixture: &Fixture, relative: &str) -> Vec<String> {
    std::fs::read_to_string(fixture.path(relative))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn refused_dead_mailboxes_are_not_mailed_by_the_next_campaign(behavior: Behavior) {
    let server = refusing_server(behavior);
    let fixture = Fixture::new(&people(8), "");
    let run = fixture.send(&server.url(), &[]);
    // Refused for good: every recipient has a final outcome.
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("3 address(es) refused as dead mailboxes added to"),
        "{}",
        run.all()
    );
    let mut bounced = lines(&fixture, BOUNCED);
    bounced.sort();
    assert_eq!(
        bounced,
        [
            "person02@example.com",
            "person05@example.com",
            "person07@example.com"
        ]
    );
    // The log's outcomes are as they were: failed, with the server's reply.
    let records = fixture.log_records();
    let outcome = |rcpt: &str| {
        records
            .iter()
            .rev()
            .find(|r| r["rcpt"] == rcpt && r["event"] != "attempt")
            .unwrap_or_else(|| panic!("no outcome for {rcpt}"))
            .clone()
    };
    for rcpt in [
        "person02@example.com",
        "person04@example.com",
        "person07@example.com",
    ] {
        assert_eq!(outcome(rcpt)["event"], "failed", "{rcpt}");
    }
    assert!(
        outcome("person04@example.com")["reply"]
            .as_str()
            .unwrap()
            .starts_with("550 5.7.1"),
        "{records:?}"
    );

    // A new campaign beside it reads the same default list.
    let second = std::fs::read_to_string(fixture.campaign())
        .unwrap()
        .replace("id = \"essai-2026\"", "id = \"essai-2027\"");
    fixture.write("campaign2.toml", &second);
    let before = server.journal().rcpt_commands.len();
    let campaign2 = fixture.path("campaign2.toml");
    let run = fixture.run(
        &["send", campaign2.to_str().unwrap(), "--smtp", &server.url()],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("3 suppressed"), "{}", run.all());
    let journal = server.journal();
    let mut second_rcpts: Vec<&str> = journal.rcpt_commands[before..]
        .iter()
        .map(String::as_str)
        .collect();
    second_rcpts.sort();
    assert_eq!(
        second_rcpts,
        [
            "person01@example.com",
            "person03@example.com",
            // A policy refusal is not a dead mailbox: tried again.
            "person04@example.com",
            "person06@example.com",
            "person08@example.com"
        ]
    );
    assert_eq!(lines(&fixture, BOUNCED).len(), 3, "nothing added twice");
}

#[test]
fn dead_mailboxes_refused_to_a_pipelining_server_go_to_bounced() {
    refused_dead_mailboxes_are_not_mailed_by_the_next_campaign(Behavior::accept_all());
}

#[test]
fn dead_mailboxes_refused_one_command_at_a_time_go_to_bounced() {
    refused_dead_mailboxes_are_not_mailed_by_the_next_campaign(
        Behavior::accept_all().without_pipelining(),
    );
}

/// A relay that refuses the sender, worded as an unknown user (a VERP sender it does not know),
/// refuses every message: it must not make the whole list bounced.
#[test]
fn a_refused_sender_suppresses_no_one() {
    let server = SmtpServer::start_in_background(Behavior::accept_all().on_mail(|_| {
        Some(Fault::reply(
            550,
            "5.1.1 <dons@example.org>: Sender address rejected: User unknown",
        ))
    }));
    let fixture = Fixture::new(&people(3), "");
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("3 failed"), "{}", run.all());
    assert!(
        !fixture.path(BOUNCED).exists(),
        "{:?}",
        lines(&fixture, BOUNCED)
    );
}

/// A bounced list kept as a spreadsheet's CSV, whose header has a quoted name with a comma in
/// it: the addresses `send` adds land in its `email` column, so the next run reads them.
#[test]
fn dead_mailboxes_land_in_the_email_column_of_a_csv_list_with_a_quoted_header() {
    let server = refusing_server(Behavior::accept_all());
    let fixture = Fixture::new(
        &people(8),
        "[suppression]\nbounced = \"suppression/bounced.csv\"\n",
    );
    let header = "\"Name, as written\",email,date\n\"Doe, Jane\",jane@example.net,2026-01-01\n";
    fixture.write("suppression/bounced.csv", header);
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let text = std::fs::read_to_string(fixture.path("suppression/bounced.csv")).unwrap();
    let mut added: Vec<&str> = text[header.len()..].lines().collect();
    added.sort();
    assert_eq!(
        added,
        [
            ",person02@example.com,",
            ",person05@example.com,",
            ",person07@example.com,"
        ],
        "{text}"
    );
    let status = fixture.status();
    assert_eq!(status["suppressed_by"]["bounced"], 3, "{status}");
}

/// Postfix checks the sender at RCPT TO by default (`smtpd_delay_reject = yes`), and with
/// `reject_unverified_sender` and `unverified_sender_reject_code = 550` it answers every RCPT
/// with the enhanced code its probe of the return path got: `5.1.1` about the SENDER (a VERP
/// return path a receiving server cannot verify). Those recipients are alive.
#[test]
fn a_sender_refused_at_rcpt_with_5_1_1_suppresses_no_one() {
    let server = SmtpServer::start_in_background(Behavior::accept_all().rcpt_reply(|_| {
        Some((
            550,
            "5.1.1 <bounces+x@example.org>: Sender address rejected: undeliverable address: \
             host mx.example.org[192.0.2.7] said: 550 5.1.1 <bounces+x@example.org>: \
             Recipient address rejected: User unknown in local recipient table (in reply to \
             RCPT TO command)"
                .into(),
        ))
    }));
    let fixture = Fixture::new(&people(3), "");
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("3 failed"), "{}", run.all());
    assert_eq!(server.journal().rcpt_commands.len(), 3);
    assert!(
        !fixture.path(BOUNCED).exists(),
        "{:?}",
        lines(&fixture, BOUNCED)
    );
}

#[test]
fn status_counts_people_on_each_list_mailed_or_not() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(8), "");
    let run = fixture.send(&server.url(), &["--max-messages", "5"]);
    assert_eq!(run.code, 75, "{}", run.all());
    assert_eq!(server.wait_for(5, WAIT).len(), 5);
    // Since sending began: two who were mailed unsubscribe, one bounces later, one complains;
    // of those not yet mailed, one unsubscribes and one bounced elsewhere.
    fixture.write(
        "suppression/unsubscribed.txt",
        "person01@example.com\nPERSON02@example.com\nperson07@example.com\nnobody@example.com\n",
    );
    fixture.write(
        "suppression/bounced.txt",
        "person03@example.com\nperson08@example.com\n",
    );
    fixture.write("suppression/complained.txt", "person04@example.com\n");
    let status = fixture.status();
    assert_eq!(
        status["suppressed_by"],
        serde_json::json!({"unsubscribed": 3, "bounced": 2, "complained": 1}),
        "{status}"
    );
    // `suppressed` is still an outcome: never mailed because suppressed.
    assert_eq!(status["sent"], 5, "{status}");
    assert_eq!(status["suppressed"], 2, "{status}");
    assert_eq!(status["pending"], 1, "{status}");
    assert_eq!(status["expired"], 0, "{status}");
    assert_eq!(status["total"], 8, "{status}");
    let text = fixture.command("status", &[]);
    assert!(
        text.stdout
            .contains("on suppression lists: 3 unsubscribed, 2 bounced, 1 complained"),
        "{}",
        text.all()
    );
}
