//! DKIM: messages missive sends, as an SMTP server received them, carry a signature that an
//! independent verifier (stalwart's mail-auth, and Python's dkimpy where it is installed, with
//! the public key given as its DNS record) accepts, over the unsubscribe headers too; and
//! changing any signed header, the body, or the key breaks it.

use std::time::Duration;

use crate::support::dkim::{self, TestKey};
use crate::support::harness::{Fixture, people};
use crate::support::smtp_server::{Behavior, SmtpServer};

const SECRET: (&str, &str) = (
    "MISSIVE_UNSUBSCRIBE_SECRET",
    "a-test-key-for-unsubscribe-tokens-0123456789",
);
const UNSUBSCRIBE: &str = "[unsubscribe]\nmailto = \"desabonnement@example.org\"\n\
                           url = \"https://dons.example.org/desabonnement\"\n";

/// Sends one message of a campaign signed with a fresh `algorithm` key; returns the key and the
/// message as the server received it.
fn send_signed(algorithm: &str) -> (TestKey, Vec<u8>, tempfile::TempDir) {
    send_signed_to(algorithm, &people(1))
}

/// [`send_signed`] to the one person of `csv`.
fn send_signed_to(algorithm: &str, csv: &str) -> (TestKey, Vec<u8>, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let key = dkim::generate(keys.path(), algorithm);
    let extra = format!(
        "{UNSUBSCRIBE}[dkim]\ndomain = \"example.org\"\nselector = \"s2026\"\nkey = '{}'\n",
        key.pem.display()
    );
    let fixture = Fixture::new(csv, &extra);
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let campaign = fixture.campaign();
    let url = server.url();
    let run = fixture.run(
        &["send", campaign.to_str().unwrap(), "--smtp", &url],
        &[SECRET],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let mut received = server.wait_for(1, Duration::from_secs(10));
    assert_eq!(received.len(), 1, "{}", run.all());
    (key, received.remove(0).data, keys)
}

/// Verifies a message `send_signed` sent: it must pass, signed with `algorithm`.
fn assert_verifies(message: &[u8], key: &TestKey, algorithm: &str) -> dkim::Verdict {
    let verdict = dkim::verify(message, "s2026", "example.org", &key.record);
    assert!(
        verdict.passed,
        "{}\n{}",
        verdict.report,
        String::from_utf8_lossy(message)
    );
    assert_eq!(verdict.algorithm, algorithm, "{}", verdict.report);
    verdict
}

/// Each changed copy of a signed message (named by what was changed) must fail to verify.
fn assert_each_breaks(key: &TestKey, tampered: impl IntoIterator<Item = (&'static str, Vec<u8>)>) {
    for (what, changed) in tampered {
        let verdict = dkim::verify(&changed, "s2026", "example.org", &key.record);
        assert!(
            !verdict.passed,
            "changing {what} should break the signature: {}",
            verdict.report
        );
    }
}

fn replace_once(message: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(message.to_vec()).unwrap();
    assert!(text.contains(from), "{from:?} not in\n{text}");
    text.replacen(from, to, 1).into_bytes()
}

fn header_line<'a>(message: &'a str, name: &str) -> &'a str {
    message
        .lines()
        .find(|l| l.starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} header in\n{message}"))
}

#[test]
fn ed25519_signature_verifies_and_breaks_when_a_signed_header_changes() {
    let (key, message, _keys) = send_signed("ed25519");
    let verdict = assert_verifies(&message, &key, "ed25519-sha256");
    for header in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ] {
        assert!(
            verdict.signed.iter().any(|h| h == header),
            "{header} is not signed: {}",
            verdict.report
        );
    }

    let text = String::from_utf8(message.clone()).unwrap();
    let subject = header_line(&text, "Subject");
    let list_unsubscribe = header_line(&text, "List-Unsubscribe-Post");
    let tampered = [
        (
            "the subject",
            replace_once(&message, subject, "Subject: Gagnez un iPhone"),
        ),
        (
            "List-Unsubscribe-Post",
            replace_once(&message, list_unsubscribe, "List-Unsubscribe-Post: nothing"),
        ),
        (
            "the unsubscribe link",
            replace_once(
                &message,
                "e=person01%40example.com",
                "e=victim%40example.com",
            ),
        ),
        ("the body", replace_once(&message, "Bonjour", "Bonsoir")),
    ];
    assert_each_breaks(&key, tampered);
    // A header that is not signed (a relay's trace, say) may be added freely.
    let mut relayed = b"Received: from relay.example.net by mx.example.com\r\n".to_vec();
    relayed.extend_from_slice(&message);
    let verdict = dkim::verify(&relayed, "s2026", "example.org", &key.record);
    assert!(verdict.passed, "{}", verdict.report);
    // The right key is needed: another one's record does not verify.
    let (other, _, _keys) = send_signed("ed25519");
    let verdict = dkim::verify(&message, "s2026", "example.org", &other.record);
    assert!(!verdict.passed, "{}", verdict.report);
}

#[test]
fn rsa_sha256_signature_verifies() {
    let (key, message, _keys) = send_signed("rsa");
    assert_verifies(&message, &key, "rsa-sha256");
    let tampered = [
        (
            "To",
            replace_once(&message, "To: ", "To: eve@example.net, "),
        ),
        ("the body", replace_once(&message, "Bonjour", "Bonsoir")),
    ];
    assert_each_breaks(&key, tampered);
    let (other, _, _keys) = send_signed("rsa");
    let verdict = dkim::verify(&message, "s2026", "example.org", &other.record);
    assert!(!verdict.passed, "{}", verdict.report);
}

/// The verifier itself is held to saying no: a message that carries no signature, or whose
/// signature claims another selector, does not pass.
#[test]
fn a_message_without_a_valid_signature_does_not_verify() {
    let (key, message, _keys) = send_signed("ed25519");
    let text = String::from_utf8(message.clone()).unwrap();
    let signature_start = text.find("DKIM-Signature: ").expect("a DKIM-Signature");
    let signature_end = signature_start
        + text[signature_start..]
            .match_indices("\r\n")
            .find(|(i, _)| !text[signature_start + i + 2..].starts_with([' ', '\t']))
            .map(|(i, _)| i + 2)
            .unwrap();
    let unsigned = format!("{}{}", &text[..signature_start], &text[signature_end..]);
    assert!(!unsigned.contains("DKIM-Signature"), "{unsigned}");
    let verdict = dkim::verify(unsigned.as_bytes(), "s2026", "example.org", &key.record);
    assert!(!verdict.passed, "{}", verdict.report);

    let verdict = dkim::verify(&message, "other", "example.org", &key.record);
    assert!(!verdict.passed, "{}", verdict.report);
}

#[test]
fn an_unreadable_key_stops_check_and_send_with_65() {
    let extra = "[dkim]\ndomain = \"example.org\"\nselector = \"s\"\nkey = \"keys/missing.pem\"\n";
    let fixture = Fixture::new(&people(1), extra);
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(run.stderr.contains("keys/missing.pem"), "{}", run.all());
    assert!(run.stderr.contains("dkim.key"), "{}", run.all());

    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 65, "{}", run.all());

    fixture.write("keys/missing.pem", "not a key\n");
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(run.stderr.contains("openssl genpkey"), "{}", run.all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        server.connections(),
        0,
        "nothing goes out unsigned by surprise"
    );
}

#[test]
fn check_warns_when_dkim_is_not_aligned_with_from() {
    let keys = tempfile::tempdir().unwrap();
    let key = dkim::generate(keys.path(), "ed25519");
    let extra = format!(
        "[dkim]\ndomain = \"mailer.example.net\"\nselector = \"s\"\nkey = '{}'\n",
        key.pem.display()
    );
    let fixture = Fixture::new(&people(1), &extra);
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 0, "warnings do not fail check: {}", run.all());
    assert!(
        run.stdout.contains("warning: ")
            && run.stdout.contains("field `dkim.domain`")
            && run
                .stdout
                .contains("not aligned with the From domain example.org"),
        "{}",
        run.all()
    );
}

#[test]
fn a_long_display_name_is_folded_and_the_signature_still_verifies() {
    // Two name columns of 1000 characters, one word each: lettre alone would write a To line
    // of over 2000 octets.
    let first = "Z".repeat(1000);
    let last = "D".repeat(1000);
    let csv = format!("email,first_name,last_name,amount\nzoe@example.com,{first},{last},\n");
    let (key, message, _keys) = send_signed_to("ed25519", &csv);
    let text = String::from_utf8(message.clone()).unwrap();
    let head = text.split("\r\n\r\n").next().unwrap();
    assert!(head.split("\r\n").all(|line| line.len() <= 998), "{head}");
    let parsed = mail_parser::MessageParser::default()
        .parse(&message)
        .unwrap();
    let to = parsed.to().and_then(|to| to.first()).unwrap();
    assert_eq!(to.name(), Some(format!("{first} {last}").as_str()));
    let verdict = dkim::verify(&message, "s2026", "example.org", &key.record);
    assert!(verdict.passed, "{}\n{head}", verdict.report);
}
