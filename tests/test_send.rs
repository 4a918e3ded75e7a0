//! `send --test`: the letter of one person of the list, mailed to the test addresses only, as the
//! real thing would be (DKIM, VERP, the relay), subject marked, with nothing of the campaign's
//! state touched; its unsubscribe link and return path never act for the real person. Judged on
//! what a real SMTP server received and on the campaign's folder.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::support::dkim;
use crate::support::harness::{Fixture, Run, people};
use crate::support::smtp_server::{Behavior, Received, SmtpServer};
use missive::unsubscribe::Secret;
use missive::verp::Verp;

const SECRET_VAR: &str = "MISSIVE_UNSUBSCRIBE_SECRET";
const SECRET: &str = "a-test-key-for-unsubscribe-tokens-0123456789";
const SETTINGS: &str = "[unsubscribe]\nmailto = \"desabonnement@example.org\"\n\
                        url = \"https://dons.example.org/desabonnement\"\n\
                        [bounces]\nreturn_path = \"bounces@example.org\"\n";
const WAIT: Duration = Duration::from_secs(10);

fn send(fixture: &Fixture, server: &SmtpServer, more: &[&str]) -> Run {
    let campaign = fixture.campaign();
    let url = server.url();
    let mut args = vec!["send", campaign.to_str().unwrap(), "--smtp", &url];
    args.extend_from_slice(more);
    fixture.run(&args, &[(SECRET_VAR, SECRET)])
}

/// Every file under `dir`, relative, with its bytes.
fn files(dir: &Path) -> BTreeSet<(String, Vec<u8>)> {
    let mut found = BTreeSet::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                found.insert((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    found
}

fn parsed(message: &Received) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default()
        .parse(&message.data)
        .expect("a message")
}

/// The HTTPS link of `List-Unsubscribe`.
fn unsubscribe_link(message: &Received) -> String {
    let header = parsed(message)
        .header_raw("List-Unsubscribe")
        .expect("List-Unsubscribe")
        .replace(['\r', '\n'], "");
    let start = header.find("<https://").expect("an https link") + 1;
    let end = start + header[start..].find('>').unwrap();
    header[start..end].to_owned()
}

#[test]
fn a_test_send_reaches_only_the_test_addresses_signed_and_leaves_the_campaign_untouched() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let keys = tempfile::tempdir().unwrap();
    let key = dkim::generate(keys.path(), "ed25519");
    let extra = format!(
        "{SETTINGS}[dkim]\ndomain = \"example.org\"\nselector = \"s2026\"\nkey = '{}'\n",
        key.pem.display()
    );
    let fixture = Fixture::new(&people(3), &extra);
    let before = files(fixture.dir.path());

    let run = send(
        &fixture,
        &server,
        &[
            "--test",
            "essai1@example.net,Essai2@example.net",
            "--as",
            "person02@example.com",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let received = server.wait_for(2, WAIT);
    std::thread::sleep(Duration::from_millis(200));
    let journal = server.journal();
    assert_eq!(journal.received.len(), 2, "{}", run.all());
    assert_eq!(
        journal.rcpt_commands,
        ["essai1@example.net", "Essai2@example.net"],
        "only the test addresses, each once"
    );
    let real_verp = Verp::new(
        &"bounces@example.org".parse().unwrap(),
        "essai-2026",
        Secret::new(SECRET).unwrap(),
    )
    .unwrap();
    let mut test_ids = BTreeSet::new();
    for message in &received {
        let rcpt = message.rcpt_to[0].clone();
        let mail = parsed(message);
        let to = mail.to().and_then(|to| to.first()).unwrap();
        assert_eq!(to.address(), Some(rcpt.as_str()));
        assert_eq!(to.name(), None, "To is the test address alone");
        assert_eq!(mail.subject(), Some("[TEST] Nos ratés de l’année"));
        // The letter of person02, whatever address it went to.
        let text = mail.body_text(0).unwrap();
        assert!(text.contains("Bonjour Prénom2"), "{text}");
        assert!(text.contains("Un don de 20\u{a0}$"), "{text}");
        assert!(
            !text.contains("Prénom1") && !text.contains("Prénom3"),
            "{text}"
        );
        let verdict = dkim::verify(&message.data, "s2026", "example.org", &key.record);
        assert!(verdict.passed, "{}", verdict.report);
        // A return path of the test's: it reads back to no one of the real campaign.
        assert!(
            message.mail_from.starts_with("bounces+"),
            "{}",
            message.mail_from
        );
        assert_eq!(real_verp.recipient_key(&message.mail_from), None);
        test_ids.insert(mail.message_id().unwrap().to_owned());
    }
    assert_eq!(test_ids.len(), 2);

    // Nothing of the campaign's state: no send log, no lock, no state file, nothing changed.
    assert!(!fixture.log_path().exists());
    assert_eq!(files(fixture.dir.path()), before, "{}", run.all());

    // The real send afterwards mails everyone, person02 included, under other Message-IDs.
    let real = send(&fixture, &server, &[]);
    assert_eq!(real.code, 0, "{}", real.all());
    let all = server.wait_for(5, WAIT);
    let real_rcpts: BTreeSet<String> = all[2..].iter().map(|m| m.rcpt_to[0].clone()).collect();
    assert_eq!(
        real_rcpts,
        BTreeSet::from(
            [
                "person01@example.com",
                "person02@example.com",
                "person03@example.com"
            ]
            .map(String::from)
        )
    );
    for message in &all[2..] {
        let id = parsed(message).message_id().unwrap().to_owned();
        assert!(!test_ids.contains(&id), "{id}");
    }
    assert_eq!(fixture.status()["sent"], 3);
}

#[test]
fn the_unsubscribe_link_of_a_test_message_does_not_unsubscribe_the_person_rendered() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(2), SETTINGS);
    // Without --as: the first valid row.
    let run = send(&fixture, &server, &["--test", "essai@example.net"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let received = server.wait_for(1, WAIT);
    let text = parsed(&received[0]).body_text(0).unwrap().into_owned();
    assert!(text.contains("Bonjour Prénom1"), "{text}");
    let link = unsubscribe_link(&received[0]);
    assert!(!link.contains("person01"), "{link}");

    let verify = fixture.run(
        &["unsubscribe-token", "verify", "--json", &link],
        &[(SECRET_VAR, SECRET)],
    );
    let verdict: serde_json::Value =
        serde_json::from_str(&verify.stdout).unwrap_or_else(|e| panic!("{e}: {}", verify.all()));
    // It names the tester under the test campaign, which no served campaign answers to.
    assert_eq!(verdict["address"], "essai@example.net", "{verdict}");
    assert_eq!(verdict["campaign"], "essai-2026+test", "{verdict}");
    // The link of the real campaign for person01 is another one.
    let real = send(&fixture, &server, &[]);
    assert_eq!(real.code, 0, "{}", real.all());
    let all = server.wait_for(3, WAIT);
    let person01 = all
        .iter()
        .find(|m| m.rcpt_to[0] == "person01@example.com")
        .unwrap();
    assert_ne!(unsubscribe_link(person01), link);
}

#[test]
fn invalid_or_too_many_test_addresses_and_an_unknown_as_are_named_and_nothing_is_sent() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(2), SETTINGS);
    let before = files(fixture.dir.path());
    let run = send(
        &fixture,
        &server,
        &[
            "--test",
            "ok@example.net,pas-une-adresse,x@example.net\r\nRCPT TO:<evil@example.org>",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("pas-une-adresse"), "{}", run.all());
    assert!(run.stderr.contains("line break"), "{}", run.all());

    let run = send(
        &fixture,
        &server,
        &["--test", "ok@example.net", "--as", "nobody@example.com"],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("nobody@example.com"), "{}", run.all());

    // The list pasted in by mistake: 21 addresses, none mailed.
    let many: Vec<String> = (1..=21).map(|i| format!("t{i}@example.net")).collect();
    let run = send(&fixture, &server, &["--test", &many.join(",")]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("21 addresses, at most 20"),
        "{}",
        run.all()
    );

    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.journal().connections, 0);
    assert_eq!(files(fixture.dir.path()), before);
}

#[test]
fn a_refused_test_address_is_told_and_the_exit_is_not_zero() {
    let server = SmtpServer::start_in_background(Behavior::accept_all().rcpt_reply(|address| {
        (address == "refuse@example.net").then(|| (550, "5.1.1 no such user".to_owned()))
    }));
    let fixture = Fixture::new(&people(1), SETTINGS);
    let run = send(
        &fixture,
        &server,
        &["--test", "refuse@example.net,ok@example.net"],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout
            .contains("refuse@example.net: not accepted (550 5.1.1 no such user"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains("ok@example.net: accepted"),
        "{}",
        run.all()
    );
    assert_eq!(server.wait_for(1, WAIT).len(), 1);
    assert!(!fixture.log_path().exists());
}
