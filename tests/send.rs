//! `missive send` against a real SMTP server on 127.0.0.1: what arrives, once each, and what the
//! send log and the exit code say afterwards.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::harness::{Fixture, list_with_line_ends, people};
use crate::support::smtp_server::{Behavior, Received, SmtpServer};
use mail_parser::{MessageParser, MimeHeaders};

const WAIT: Duration = Duration::from_secs(10);

fn parsed(received: &Received) -> mail_parser::Message<'_> {
    MessageParser::default()
        .parse(&received.data)
        .expect("a parsable message")
}

/// The decoded text part with LF line endings (on the wire it is CRLF, as SMTP requires).
fn text_part(message: &mail_parser::Message<'_>) -> String {
    message
        .body_text(0)
        .expect("a text part")
        .replace("\r\n", "\n")
}

fn rcpts(messages: &[Received]) -> Vec<String> {
    messages.iter().flat_map(|m| m.rcpt_to.clone()).collect()
}

/// The header block of a raw message, as text.
fn header_block(received: &Received) -> String {
    let text = String::from_utf8_lossy(&received.data);
    text.split("\r\n\r\n").next().unwrap_or("").to_owned()
}

fn by_rcpt<'a>(messages: &'a [Received], address: &str) -> &'a Received {
    messages
        .iter()
        .find(|m| m.rcpt_to == [address])
        .unwrap_or_else(|| panic!("no message to {address}"))
}

const HOSTILE: &str = "email,first_name,last_name,amount
zoe@example.com,Zoé,Durand,40
eve@example.net,<script>alert(1)</script>,O'Hara & Co,
,Vide,,
pas-une-adresse,Bad,,
ZOE@example.com,Doublon,,
\"inj@example.com\",\"Eve\r\nBcc: victim@example.org\",X,
trop@example.com,a,b,c,d
anon@example.org,,,
";

#[test]
fn sends_one_personalized_multipart_message_per_valid_recipient() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(HOSTILE, "");
    let run = fixture.send(&server.url(), &[]);
    // Rejected rows are reported, and do not keep the others from a final outcome.
    assert_eq!(run.code, 0, "{}", run.all());
    // The injection row spans lines 7 and 8 (a quoted CRLF), so the next row is on line 9.
    for line in [4, 5, 6, 7, 9] {
        assert!(
            run.stdout.contains(&format!("list.csv:{line}:")),
            "line {line} not reported\n{}",
            run.all()
        );
    }

    let messages = server.wait_for(3, WAIT);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), 3, "{}", run.all());
    let mut got = rcpts(&messages);
    got.sort();
    assert_eq!(
        got,
        ["anon@example.org", "eve@example.net", "zoe@example.com"]
    );

    let mut ids = BTreeSet::new();
    for received in &messages {
        let headers = header_block(received);
        assert!(!headers.lines().any(|l| l.starts_with("Bcc")), "{headers}");
        assert!(headers.lines().all(|l| l.len() <= 998));
        let message = parsed(received);
        assert_eq!(message.subject(), Some("Nos ratés de l’année"));
        assert_eq!(
            message.from().unwrap().first().unwrap().address(),
            Some("dons@example.org")
        );
        assert_eq!(
            message.reply_to().unwrap().first().unwrap().address(),
            Some("reponses@example.org")
        );
        let content_type = message.content_type().unwrap();
        assert_eq!(
            (content_type.ctype(), content_type.subtype()),
            ("multipart", Some("alternative"))
        );
        // Text first, HTML last: clients show the last part they can display.
        let parts: Vec<String> = message.parts[1..]
            .iter()
            .map(|p| {
                let ct = p.content_type().unwrap();
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(parts, ["text/plain", "text/html"]);
        let id = message.message_id().unwrap().to_owned();
        assert!(
            id.starts_with("essai-2026.") && id.ends_with("@example.org"),
            "{id}"
        );
        ids.insert(id);
    }
    assert_eq!(ids.len(), 3, "Message-IDs are distinct");

    let zoe = parsed(by_rcpt(&messages, "zoe@example.com"));
    let to = zoe.to().unwrap().first().unwrap();
    assert_eq!(
        (to.name(), to.address()),
        (Some("Zoé Durand"), Some("zoe@example.com"))
    );
    let text = text_part(&zoe);
    assert!(text.starts_with("Bonjour Zoé,\n"), "{text}");
    assert!(text.contains("Un don de 40\u{a0}$\u{202f}?"), "{text}");
    assert!(zoe.body_html(0).unwrap().contains("Bonjour Zoé,"));

    let eve = parsed(by_rcpt(&messages, "eve@example.net"));
    let html = eve.body_html(0).unwrap();
    assert!(
        html.contains("Bonjour &lt;script&gt;alert(1)&lt;/script&gt;,"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    assert_eq!(
        eve.to().unwrap().first().unwrap().name(),
        Some("<script>alert(1)</script> O'Hara & Co")
    );

    let anon = parsed(by_rcpt(&messages, "anon@example.org"));
    let text = text_part(&anon);
    assert!(text.starts_with("Bonjour,\n"), "{text}");
    assert!(text.contains("Un don de 25\u{a0}$"), "{text}");
}

#[test]
fn a_second_send_resumes_and_never_sends_twice() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(7), "");

    let first = fixture.send(&server.url(), &["--max-messages", "3"]);
    assert_eq!(
        first.code,
        75,
        "budget spent with work left: {}",
        first.all()
    );
    assert_eq!(server.wait_for(3, WAIT).len(), 3);

    let second = fixture.send(&server.url(), &[]);
    assert_eq!(second.code, 0, "{}", second.all());
    let third = fixture.send(&server.url(), &[]);
    assert_eq!(third.code, 0, "{}", third.all());
    assert!(third.stdout.contains("0 sent"), "{}", third.all());

    std::thread::sleep(Duration::from_millis(200));
    let mut got = rcpts(&server.messages());
    got.sort();
    let expected: Vec<String> = (1..=7)
        .map(|i| format!("person{i:02}@example.com"))
        .collect();
    assert_eq!(got, expected, "everyone once, nobody twice");

    let sent = fixture
        .log_records()
        .iter()
        .filter(|r| r["event"] == "sent")
        .count();
    assert_eq!(sent, 7);
}

/// Spreadsheets write CRLF: `send` names a rejected row by the line an editor shows, as for LF,
/// also after a quoted field that spans two lines.
#[test]
fn rejected_rows_are_named_by_their_line_in_crlf_and_lf_files() {
    for eol in ["\r\n", "\n"] {
        let csv = list_with_line_ends(eol);
        let server = SmtpServer::start_in_background(Behavior::accept_all());
        let fixture = Fixture::new(&csv, "");
        let run = fixture.send(&server.url(), &[]);
        assert_eq!(run.code, 0, "{}", run.all());
        for expected in [
            "list.csv:3: field `email`: invalid address",
            "list.csv:6: field `email`: empty address",
        ] {
            assert!(
                run.stdout.contains(expected),
                "{eol:?}: missing {expected:?}\n{}",
                run.all()
            );
        }
        assert_eq!(server.wait_for(3, WAIT).len(), 3);
        std::thread::sleep(Duration::from_millis(200));
        let mut got = rcpts(&server.messages());
        got.sort();
        assert_eq!(
            got,
            ["last@example.com", "multi@example.com", "ok@example.com"]
        );
    }
}

/// A list saved as Latin-1 used to be half sent: its ASCII rows mailed, the others rejected,
/// exit 0, and cron never ran again. The file is refused whole before anything is sent.
#[test]
fn a_recipient_file_that_is_not_utf8_is_refused_before_anything_is_sent() {
    let fixture = Fixture::new("", "");
    std::fs::write(
        fixture.path("recipients/list.csv"),
        b"email,first_name,last_name,amount\r\n\
          ascii@example.com,Zoe,Durand,\r\n\
          francoise@example.com,Fran\xe7oise,L\xe9ger,\r\n\
          rene@example.com,Rene,,\r\n",
    )
    .unwrap();
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    for part in [
        "list.csv:3: not UTF-8 (byte 0xE7)",
        "iconv -f latin1 -t utf-8 ",
    ] {
        assert!(run.stderr.contains(part), "missing {part:?}\n{}", run.all());
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.messages().is_empty(),
        "{:?}",
        rcpts(&server.messages())
    );
    assert_eq!(server.connections(), 0);
    assert!(fixture.log_records().is_empty(), "nothing was attempted");
}

#[test]
fn message_ids_and_bodies_are_the_same_on_a_resend() {
    let first_server = SmtpServer::start_in_background(Behavior::accept_all());
    let second_server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(3), "");
    let other_log = fixture.path("other.sendlog.jsonl");
    assert_eq!(fixture.send(&first_server.url(), &[]).code, 0);
    // A fresh log, said to be meant: as if the first run's outcomes were lost, everyone is
    // sent again.
    let run = fixture.send(
        &second_server.url(),
        &["--log", other_log.to_str().unwrap(), "--new-log"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let (a, b) = (
        first_server.wait_for(3, WAIT),
        second_server.wait_for(3, WAIT),
    );
    for received in &a {
        let twin = by_rcpt(&b, &received.rcpt_to[0]);
        let (m1, m2) = (parsed(received), parsed(twin));
        assert_eq!(m1.message_id(), m2.message_id());
        assert_eq!(text_part(&m1), text_part(&m2));
        assert_eq!(m1.body_html(0), m2.body_html(0));
    }
}

#[test]
fn permanent_refusals_are_final_and_transient_ones_are_retried_by_the_next_run() {
    let refusing =
        SmtpServer::start_in_background(Behavior::accept_all().rcpt_reply(
            |address| match address {
                "person02@example.com" => Some((550, "5.1.1 No such user".into())),
                "person03@example.com" => Some((451, "4.3.0 Try again later".into())),
                _ => None,
            },
        ));
    // A short backoff, so the retry falls due within the test.
    let fixture = Fixture::new(
        &people(5),
        "[retry]\nfirst_delay = \"1s\"\nmax_delay = \"1s\"\n",
    );
    let run = fixture.send(&refusing.url(), &[]);
    assert_eq!(
        run.code,
        75,
        "a deferred message is work left: {}",
        run.all()
    );
    assert_eq!(refusing.wait_for(3, WAIT).len(), 3);

    let status = fixture.command("status", &["--json"]);
    let counts: serde_json::Value =
        serde_json::from_str(&status.stdout).unwrap_or_else(|_| panic!("{}", status.all()));
    assert_eq!(counts["sent"], 3);
    assert_eq!(counts["failed"], 1);
    assert_eq!(counts["deferred"], 1);
    assert_eq!(counts["pending"], 0);
    assert_eq!(counts["total"], 5);
    let records = fixture.log_records();
    let failed = records.iter().find(|r| r["event"] == "failed").unwrap();
    assert_eq!(failed["rcpt"], "person02@example.com");
    assert!(
        failed["reply"].as_str().unwrap().contains("550"),
        "{failed}"
    );

    let deferred = records.iter().find(|r| r["event"] == "deferred").unwrap();
    assert_eq!(deferred["rcpt"], "person03@example.com");
    assert!(deferred["retry_at"].is_string(), "{deferred}");

    // Before its retry is due, a run leaves the deferred message alone and says work is left.
    let accepting = SmtpServer::start_in_background(Behavior::accept_all());
    let early = fixture.send(&accepting.url(), &[]);
    assert_eq!(early.code, 75, "{}", early.all());
    assert!(early.stdout.contains("the next is due"), "{}", early.all());
    assert!(accepting.messages().is_empty());

    // 1 s ± 20 %, rounded up to the second.
    std::thread::sleep(Duration::from_millis(2500));
    let run = fixture.send(&accepting.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rcpts(&accepting.messages()), ["person03@example.com"]);
    let counts: serde_json::Value =
        serde_json::from_str(&fixture.command("status", &["--json"]).stdout).unwrap();
    assert_eq!(
        (counts["sent"].as_u64(), counts["failed"].as_u64()),
        (Some(4), Some(1))
    );
}

#[test]
fn an_unreachable_server_stops_the_run_and_the_next_run_finishes() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let fixture = Fixture::new(
        &people(4),
        "[smtp]\ntimeout_secs = 2\nmax_connect_failures = 3\n",
    );
    let run = fixture.send(&format!("smtp://127.0.0.1:{closed}"), &[]);
    assert_eq!(run.code, 75, "{}", run.all());
    assert!(
        run.stdout.contains("stopped: the server is unreachable"),
        "{}",
        run.all()
    );
    // No connection, so no message reached DATA: nothing is in doubt, everyone is pending.
    let counts: serde_json::Value =
        serde_json::from_str(&fixture.command("status", &["--json"]).stdout).unwrap();
    assert_eq!(
        (counts["in_doubt"].as_u64(), counts["pending"].as_u64()),
        (Some(0), Some(4))
    );
    // Each attempt written while its message waited its turn was withdrawn.
    let records = fixture.log_records();
    let count = |event: &str| records.iter().filter(|r| r["event"] == event).count();
    assert_eq!(count("attempt"), count("withdrawn"), "{records:?}");

    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(server.wait_for(4, WAIT).len(), 4);
}

#[test]
fn a_message_with_no_reply_after_data_is_in_doubt_and_resent_with_the_same_message_id() {
    // The server takes the second message whole, then hangs up without a word.
    let flaky =
        SmtpServer::start_in_background(Behavior::accept_all().drop_after_data_for(|n| n == 1));
    let fixture = Fixture::new(&people(3), "[smtp]\npool_size = 1\n");
    let run = fixture.send(&flaky.url(), &[]);
    assert_eq!(run.code, 75, "{}", run.all());
    assert!(run.stdout.contains("in doubt"), "{}", run.all());
    let first = flaky.wait_for(3, WAIT);
    let counts: serde_json::Value =
        serde_json::from_str(&fixture.command("status", &["--json"]).stdout).unwrap();
    assert_eq!(
        (counts["sent"].as_u64(), counts["in_doubt"].as_u64()),
        (Some(2), Some(1))
    );

    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("1 in-doubt message(s) sent again"),
        "{}",
        run.all()
    );
    std::thread::sleep(Duration::from_millis(200));
    let again = server.messages();
    assert_eq!(again.len(), 1);
    let twin = by_rcpt(&first, &again[0].rcpt_to[0]);
    assert_eq!(parsed(twin).message_id(), parsed(&again[0]).message_id());
}

#[test]
fn in_doubt_skip_leaves_in_doubt_messages_alone() {
    let flaky =
        SmtpServer::start_in_background(Behavior::accept_all().drop_after_data_for(|n| n == 0));
    let fixture = Fixture::new(&people(2), "[smtp]\npool_size = 1\n");
    assert_eq!(fixture.send(&flaky.url(), &[]).code, 75);
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &["--in-doubt", "skip"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("1 in-doubt message(s) skipped"),
        "{}",
        run.all()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.messages().is_empty(), "{}", run.all());
}

#[test]
fn a_dry_run_never_touches_the_send_log() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(3), "");
    assert_eq!(
        fixture.send(&server.url(), &["--max-messages", "1"]).code,
        75
    );
    let log = fixture.path("essai-2026.sendlog.jsonl");
    let before = std::fs::read(&log).unwrap();

    let catcher = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&catcher.url(), &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        catcher.wait_for(3, WAIT).len(),
        3,
        "a dry run sends the whole list"
    );
    assert_eq!(std::fs::read(&log).unwrap(), before);
}

#[test]
fn a_dry_run_with_no_mailcatcher_captures_into_the_outbox() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let extra = format!("[dry_run]\nsmtp = \"smtp://127.0.0.1:{closed}\"\noutbox = \"boite\"\n");
    let fixture = Fixture::new(&people(3), &extra);
    let run = fixture.command("send", &["--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("3 message(s) captured"),
        "{}",
        run.all()
    );
    let outboxes: Vec<_> = std::fs::read_dir(fixture.path("boite"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(outboxes.len(), 1);
    let emls: Vec<_> = std::fs::read_dir(outboxes[0].path())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(emls.len(), 3);
    let message = std::fs::read(emls[0].path()).unwrap();
    let parsed = MessageParser::default().parse(&message).unwrap();
    assert!(text_part(&parsed).starts_with("Bonjour Prénom"));
    assert!(!fixture.path("essai-2026.sendlog.jsonl").exists());
}

#[test]
fn a_letter_changed_after_sending_began_is_refused_unless_allowed() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(3), "");
    assert_eq!(
        fixture.send(&server.url(), &["--max-messages", "1"]).code,
        75
    );
    let edited =
        crate::support::harness::LETTER.replace("Le texte de l’histoire.", "Un autre texte.");
    fixture.write("templates/letter.md", &edited);

    let refused = fixture.send(&server.url(), &[]);
    assert_eq!(refused.code, 65, "{}", refused.all());
    assert!(
        refused.stderr.contains("--allow-changed-letter"),
        "{}",
        refused.all()
    );
    assert_eq!(server.wait_for(1, WAIT).len(), 1, "nothing more was sent");

    let allowed = fixture.send(&server.url(), &["--allow-changed-letter"]);
    assert_eq!(allowed.code, 0, "{}", allowed.all());
    let messages = server.wait_for(3, WAIT);
    assert_eq!(messages.len(), 3);
    assert!(text_part(&parsed(&messages[2])).contains("Un autre texte."));
}

#[test]
fn max_duration_bounds_the_run_even_with_messages_queued() {
    // Each message takes 200 ms; twenty of them would take four seconds.
    let slow = SmtpServer::start_in_background(
        Behavior::accept_all().reply_delay(Duration::from_millis(200)),
    );
    let fixture = Fixture::new(&people(20), "[smtp]\npool_size = 1\n");
    let started = std::time::Instant::now();
    let run = fixture.send(&slow.url(), &["--max-duration", "1s"]);
    let took = started.elapsed();
    assert_eq!(run.code, 75, "{}", run.all());
    assert!(run.stdout.contains("--max-duration"), "{}", run.all());
    assert!(took < Duration::from_millis(2500), "the run took {took:?}");
    // What was queued but not sent was withdrawn: nothing in doubt, the rest pending.
    let counts: serde_json::Value =
        serde_json::from_str(&fixture.command("status", &["--json"]).stdout).unwrap();
    let received = slow.messages().len() as u64;
    assert!((1..20).contains(&received), "{received} received");
    assert_eq!(counts["in_doubt"], 0, "{counts}");
    assert_eq!(counts["sent"].as_u64(), Some(received), "{counts}");
    assert_eq!(counts["pending"].as_u64(), Some(20 - received), "{counts}");
}

#[test]
fn status_says_when_there_is_no_send_log() {
    let fixture = Fixture::new(&people(2), "");
    // Never sent, the default log: nothing sent yet, and said so.
    let run = fixture.command("status", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("no send log yet"), "{}", run.all());
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("not yet attempted") && l.ends_with(" 2")),
        "{}",
        run.all()
    );
    let json = fixture.status();
    assert_eq!(
        (json["pending"].clone(), json["log_exists"].clone()),
        (2.into(), false.into())
    );

    // A --log that does not exist is a typo, not a campaign never sent.
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    assert_eq!(fixture.send(&server.url(), &[]).code, 0);
    let typo = fixture.path("essai-2026.sendlgo.jsonl");
    for json in [&[][..], &["--json"][..]] {
        let mut args = vec!["--log", typo.to_str().unwrap()];
        args.extend_from_slice(json);
        let run = fixture.command("status", &args);
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(run.stdout.is_empty(), "{}", run.all());
        assert!(
            run.stderr
                .contains(&format!("{}: no send log there", typo.display())),
            "{}",
            run.all()
        );
    }
    assert!(!typo.exists());
    // The log that exists, named with --log, is read as before.
    let log = fixture.log_path();
    let run = fixture.command("status", &["--log", log.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (json["sent"].clone(), json["log_exists"].clone()),
        (2.into(), true.into())
    );
}

#[test]
fn debug_logging_shows_every_outcome() {
    let server =
        SmtpServer::start_in_background(Behavior::accept_all().rcpt_reply(
            |address| match address {
                "person02@example.com" => Some((550, "5.1.1 No such user".into())),
                "person03@example.com" => Some((451, "4.3.0 Try again later".into())),
                _ => None,
            },
        ));
    let fixture = Fixture::new(&people(3), "");
    let campaign = fixture.campaign();
    let url = server.url();
    let run = fixture.run(
        &["send", campaign.to_str().unwrap(), "--smtp", &url],
        &[("MISSIVE_LOG", "debug")],
    );
    assert_eq!(run.code, 75, "{}", run.all());
    for (rcpt, outcome) in [
        ("person01@example.com", "Sent"),
        ("person02@example.com", "Failed"),
        ("person03@example.com", "Deferred"),
    ] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains("outcome") && l.contains(rcpt) && l.contains(outcome)),
            "no {outcome} outcome for {rcpt}: {}",
            run.all()
        );
    }
}

#[test]
fn a_dry_run_promises_no_resend_of_in_doubt_messages() {
    let catcher =
        SmtpServer::start_in_background(Behavior::accept_all().drop_after_data_for(|n| n == 0));
    let fixture = Fixture::new(&people(2), "");
    let run = fixture.send(&catcher.url(), &["--dry-run"]);
    assert!(
        run.stdout.contains("1 message(s) got no reply after DATA"),
        "{}",
        run.all()
    );
    assert!(!run.stdout.contains("next run"), "{}", run.all());
    assert!(
        run.stdout.contains("a dry run keeps no send log"),
        "{}",
        run.all()
    );
    assert!(!fixture.log_path().exists());
}
