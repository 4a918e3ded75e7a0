//! The loop closed, end to end (issue 12): a campaign goes out with VERP to a real SMTP server
//! that refuses some people; bounces come back to the return paths the server was given, a
//! complaint quotes a message it received, and someone clicks the one-click link of the message
//! they got. `missive bounces` and `missive serve` hear all of it, `status` counts it, and the
//! next campaign sharing the lists mails exactly the others.
//!
//! person02: refused at RCPT, `550 5.1.1` (bounced at send time);
//! person04: refused at RCPT, `550 5.7.1` (policy: mailed again);
//! person06: accepted, then a DSN `5.1.1` to its return path (bounced);
//! person08: accepted, then a DSN `delayed 4.2.2` (soft, once: mailed again);
//! person10: accepted, then an ARF complaint quoting its message (complained);
//! person12: accepted, then clicks "unsubscribe" in the message (unsubscribed).

use std::time::Duration;

use crate::support::harness::{Fixture, people};
use crate::support::http::{self, SECRET, Serving};
use crate::support::smtp_server::{Behavior, Received, SmtpServer};

const WAIT: Duration = Duration::from_secs(10);
const SECTIONS: &str = r#"
[unsubscribe]
mailto = "desabonnement@example.org"
url = "https://dons.example.org/desabonnement"

[bounces]
return_path = "bounces@example.org"
"#;

fn person(n: u32) -> String {
    format!("person{n:02}@example.com")
}

/// The message the server received for `n`.
fn message_to(received: &[Received], n: u32) -> &Received {
    received
        .iter()
        .find(|m| m.rcpt_to == [person(n)])
        .unwrap_or_else(|| panic!("person{n:02} was not mailed"))
}

/// The head of a received message, unfolded, CRLF as received.
fn head(message: &Received) -> String {
    let text = String::from_utf8_lossy(&message.data);
    let end = text.find("\r\n\r\n").expect("a head and a body");
    text[..end].replace("\r\n ", " ").replace("\r\n\t", " ")
}

fn header(head: &str, name: &str) -> String {
    head.split("\r\n")
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} in\n{head}"))
}

/// A DSN as Postfix writes it, sent to the envelope sender the server was given.
fn dsn(to: &str, id: &str, recipient: &str, action: &str, status: &str, words: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n\
         To: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: {id}\r\n\
         Date: Mon, 30 Nov 2026 06:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\
         \r\n\
         --r\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is the mail system at host mx.example.com.\r\n\
         \r\n\
         --r\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.com\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; {words}\r\n\
         \r\n\
         --r--\r\n"
    )
}

/// An ARF report (RFC 5965) from a mailbox provider's feedback loop, quoting the message's
/// head as the provider stored it (its `Return-Path`, the envelope sender the server was
/// given, added on delivery) with the recipient redacted, as providers do.
fn complaint(return_path: &str, quoted_head: &str) -> String {
    let redacted: String = quoted_head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("to:"))
        .map(|line| format!("{line}\r\n"))
        .collect();
    format!(
        "From: feedback@fbl.example.net\r\n\
         To: abuse@example.org\r\n\
         Subject: Abuse report\r\n\
         Message-ID: <arf-1@fbl.example.net>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\r\n\
         \r\n\
         --f\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is an email abuse report.\r\n\
         --f\r\n\
         Content-Type: message/feedback-report\r\n\
         \r\n\
         Feedback-Type: abuse\r\n\
         User-Agent: fbl/1.0\r\n\
         Version: 1\r\n\
         Original-Rcpt-To: redacted@example.com\r\n\
         \r\n\
         --f\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         Return-Path: <{return_path}>\r\n\
         {redacted}To: redacted@example.com\r\n\
         \r\n\
         --f--\r\n"
    )
}

fn lines(fixture: &Fixture, relative: &str) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(fixture.path(relative))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn refusals_bounces_a_complaint_and_a_click_keep_exactly_those_people_from_the_next_campaign() {
    let secret = [("MISSIVE_UNSUBSCRIBE_SECRET", SECRET)];
    let server =
        SmtpServer::start_in_background(Behavior::accept_all().rcpt_reply(
            |address| match address {
                "person02@example.com" => Some((
                    550,
                    "5.1.1 <person02@example.com>: Recipient address rejected: User unknown".into(),
                )),
                "person04@example.com" => Some((550, "5.7.1 Message rejected as spam".into())),
                _ => None,
            },
        ));
    let fixture = Fixture::new(&people(12), SECTIONS);
    let campaign = fixture.campaign();
    let campaign = campaign.to_str().unwrap();
    let run = fixture.run(&["send", campaign, "--smtp", &server.url()], &secret);
    assert_eq!(
        run.code,
        0,
        "every person has a final outcome\n{}",
        run.all()
    );
    let received = server.wait_for(10, WAIT);
    assert_eq!(received.len(), 10, "{}", run.all());
    assert_eq!(lines(&fixture, "suppression/bounced.txt"), [person(2)]);

    // What came back, made of what the server received: the return paths it was given, the
    // Message-ID it saw, the link in the message's header.
    let to_6 = message_to(&received, 6);
    let to_8 = message_to(&received, 8);
    assert_ne!(to_6.mail_from, to_8.mail_from, "a return path each");
    assert!(to_6.mail_from.starts_with("bounces+"), "{}", to_6.mail_from);
    fixture.write(
        "inbox/dsn-6.eml",
        &dsn(
            &to_6.mail_from,
            "<dsn-6@mx.example.com>",
            &person(6),
            "failed",
            "5.1.1",
            "550 5.1.1 <person06@example.com>: Recipient address rejected: User unknown",
        ),
    );
    fixture.write(
        "inbox/dsn-8.eml",
        &dsn(
            &to_8.mail_from,
            "<dsn-8@mx.example.com>",
            &person(8),
            "delayed",
            "4.2.2",
            "452 4.2.2 Mailbox full",
        ),
    );
    fixture.write(
        "inbox/arf-10.eml",
        &complaint(
            &message_to(&received, 10).mail_from,
            &head(message_to(&received, 10)),
        ),
    );
    let inbox = fixture.path("inbox");
    let paths: Vec<_> = ["dsn-6.eml", "dsn-8.eml", "arf-10.eml"]
        .iter()
        .map(|name| inbox.join(name).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["bounces", campaign, "--json"];
    args.extend(paths.iter().map(String::as_str));
    let run = fixture.run(&args, &secret);
    assert_eq!(run.code, 0, "{}", run.all());
    let kinds: Vec<(String, String)> = run
        .stdout
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                value["kind"].as_str().unwrap().to_owned(),
                value["recipients"][0].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("hard".to_owned(), person(6)),
            ("soft".to_owned(), person(8)),
            ("complaint".to_owned(), person(10)),
        ],
        "{}",
        run.all()
    );

    // person12 follows the link of the message they received: one click, a POST.
    let link = header(&head(message_to(&received, 12)), "List-Unsubscribe");
    let https = link
        .split(',')
        .map(|part| part.trim().trim_matches(['<', '>']))
        .find(|part| part.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https link in {link}"))
        .to_owned();
    let target = https.strip_prefix("https://dons.example.org").unwrap();
    let mut serving = Serving::start(&[fixture.campaign().as_path()]);
    let reply = http::runtime().block_on(http::one_click(serving.addr, target));
    assert_eq!(reply.status, 200, "{}", reply.body);
    serving.terminate();
    assert!(serving.wait(WAIT).is_ok_and(|status| status.success()));
    assert_eq!(
        lines(&fixture, "suppression/unsubscribed.txt"),
        [person(12)]
    );

    // status counts each list; the send log's outcomes are as they were.
    let run = fixture.run(&["status", campaign, "--json"], &secret);
    let status: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{}", run.all()));
    assert_eq!(
        status["suppressed_by"],
        serde_json::json!({"unsubscribed": 1, "bounced": 2, "complained": 1}),
        "{}",
        run.all()
    );
    assert_eq!(
        (status["sent"].as_u64(), status["failed"].as_u64()),
        (Some(10), Some(2))
    );

    // The next campaign, from the same folder and lists, mails exactly the others: person04
    // (a refusal by policy) and person08 (one soft bounce) among them.
    let next = SmtpServer::start_in_background(Behavior::accept_all());
    let text = std::fs::read_to_string(fixture.campaign())
        .unwrap()
        .replace("essai-2026", "essai-2027");
    fixture.write("next.toml", &text);
    let next_campaign = fixture.path("next.toml");
    let run = fixture.run(
        &[
            "send",
            next_campaign.to_str().unwrap(),
            "--smtp",
            &next.url(),
        ],
        &secret,
    );
    assert_eq!(run.code, 0, "{}", run.all());
    next.wait_for(8, WAIT);
    // Anyone beyond the eight would arrive now: give them the time to.
    std::thread::sleep(Duration::from_millis(300));
    let mut got: Vec<String> = next
        .messages()
        .into_iter()
        .flat_map(|m| m.rcpt_to)
        .collect();
    got.sort();
    let expected: Vec<String> = [1, 3, 4, 5, 7, 8, 9, 11].into_iter().map(person).collect();
    assert_eq!(got, expected, "{}", run.all());
}
