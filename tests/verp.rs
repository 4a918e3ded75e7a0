//! VERP in `send`: with `[bounces] return_path`, each message's envelope sender (`MAIL FROM`, as
//! the SMTP server received it) is its recipient's own tagged address, which reads back to that
//! person and to no one else; the headers do not change. Without the section, `MAIL FROM` is
//! `From`'s address. A real send without the secret refuses before mailing anyone.

use std::time::Duration;

use crate::support::harness::{Fixture, people};
use crate::support::smtp_server::{Behavior, Received, SmtpServer};
use missive::address::RecipientKey;
use missive::unsubscribe::Secret;
use missive::verp::Verp;

const SECRET_VAR: &str = "MISSIVE_UNSUBSCRIBE_SECRET";
const SECRET: &str = "a-test-key-for-verp-return-paths-0123456789";
const BOUNCES: &str = "[bounces]\nreturn_path = \"bounces@example.org\"\n";
const WAIT: Duration = Duration::from_secs(10);

fn send(
    fixture: &Fixture,
    server: &SmtpServer,
    secret: Option<&str>,
) -> crate::support::harness::Run {
    let campaign = fixture.campaign();
    let args = ["send", campaign.to_str().unwrap(), "--smtp", &server.url()];
    let env: Vec<(&str, &str)> = secret.map(|s| (SECRET_VAR, s)).into_iter().collect();
    fixture.run(&args, &env)
}

fn header_block(received: &Received) -> String {
    let text = String::from_utf8_lossy(&received.data);
    text.split("\r\n\r\n").next().unwrap_or("").to_owned()
}

#[test]
fn each_message_goes_out_from_its_recipients_own_return_path() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(4), BOUNCES);
    let run = send(&fixture, &server, Some(SECRET));
    assert_eq!(run.code, 0, "{}", run.all());
    let messages = server.wait_for(4, WAIT);
    assert_eq!(messages.len(), 4, "{}", run.all());

    let return_path = "bounces@example.org".parse().unwrap();
    let verp = Verp::new(&return_path, "essai-2026", Secret::new(SECRET).unwrap()).unwrap();
    let mut senders = std::collections::BTreeSet::new();
    for message in &messages {
        let [rcpt] = message.rcpt_to.as_slice() else {
            panic!("one recipient a message: {:?}", message.rcpt_to)
        };
        let sender = &message.mail_from;
        assert!(
            sender.starts_with("bounces+") && sender.ends_with("@example.org"),
            "MAIL FROM:<{sender}> for {rcpt}"
        );
        assert_eq!(verp.envelope_sender(rcpt).to_string(), *sender);
        assert_eq!(
            verp.recipient_key(sender),
            Some(RecipientKey::of(rcpt)),
            "{sender} names {rcpt}"
        );
        senders.insert(sender.clone());
        // The headers are the letter's: From as before, and no Return-Path of ours.
        let headers = header_block(message);
        assert!(
            headers.contains("From: Mozilla <dons@example.org>"),
            "{headers}"
        );
        assert!(!headers.contains("Return-Path"), "{headers}");
        assert!(!headers.contains("bounces"), "{headers}");
    }
    assert_eq!(senders.len(), 4, "a return path of each person's own");
    // Under another secret, the same address names nobody: a forged bounce suppresses no one.
    let other = Verp::new(
        &return_path,
        "essai-2026",
        Secret::new(&"z".repeat(40)).unwrap(),
    )
    .unwrap();
    assert!(senders.iter().all(|s| other.recipient_key(s).is_none()));

    let check = fixture.run(
        &["check", fixture.campaign().to_str().unwrap()],
        &[(SECRET_VAR, SECRET)],
    );
    assert!(
        check
            .stdout
            .contains("return path: bounces+<tag>@example.org"),
        "{}",
        check.all()
    );
}

#[test]
fn without_bounces_the_envelope_sender_is_from_and_without_the_secret_a_send_refuses() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let plain = Fixture::new(&people(2), "");
    let run = send(&plain, &server, None);
    assert_eq!(run.code, 0, "{}", run.all());
    let messages = server.wait_for(2, WAIT);
    assert_eq!(messages.len(), 2);
    for message in &messages {
        assert_eq!(message.mail_from, "dons@example.org");
    }
    let check = plain.command("check", &[]);
    assert!(
        check
            .stdout
            .contains("return path: dons@example.org (From's address"),
        "{}",
        check.all()
    );

    let tagged = Fixture::new(&people(2), BOUNCES);
    let refused = send(&tagged, &server, None);
    assert_eq!(refused.code, 65, "{}", refused.all());
    assert!(
        refused.stderr.contains("[bounces] return_path is set")
            && refused.stderr.contains(SECRET_VAR),
        "{}",
        refused.all()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), 2, "nothing more was sent");
    let check = tagged.command("check", &[]);
    assert_eq!(check.code, 65, "{}", check.all());
    assert!(
        check
            .stdout
            .contains("[bounces] return_path needs a secret"),
        "{}",
        check.all()
    );
    // A dry run goes on with a throwaway secret, and says so.
    let dry = tagged.run(
        &[
            "send",
            tagged.campaign().to_str().unwrap(),
            "--dry-run",
            "--smtp",
            &server.url(),
        ],
        &[],
    );
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        dry.stdout
            .contains("return paths of these messages will not verify"),
        "{}",
        dry.all()
    );
    let dry_messages = server.wait_for(4, WAIT);
    assert!(
        dry_messages[2..]
            .iter()
            .all(|m| m.mail_from.starts_with("bounces+"))
    );
}
