//! The corpus of `tests/fixtures/bounces/`, each message with the decision it must get.

use super::*;
use crate::unsubscribe::Secret;
use crate::verp::Verp;

/// The recipient list the corpus was written for: `personNN@example.com`.
fn person(n: u32) -> String {
    format!("person{n:02}@example.com")
}

fn verp() -> Verp {
    let return_path: lettre::Address = "bounces@example.org".parse().unwrap();
    Verp::new(
        &return_path,
        "essai-2026",
        Secret::new(&"k".repeat(64)).unwrap(),
    )
    .unwrap()
}

/// A fixture, with its `VERP-TAG` placeholders made into `whom`'s tag.
fn fixture(name: &str, whom: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/bounces/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let tagged = verp().envelope_sender(whom).to_string();
    text.replace("bounces+VERP-TAG@example.org", &tagged)
        .into_bytes()
}

fn tag_of(verp: &Verp) -> impl Fn(&str) -> Option<Tag> + '_ {
    move |address: &str| {
        verp.has_form(address)
            .then(|| verp.recipient_key(address).map_or(Tag::Forged, Tag::Ours))
    }
}

/// The decisions about `raw`, with the campaign's list of twelve and VERP on or off.
fn decide(raw: &[u8], with_verp: bool) -> Vec<Decision> {
    let reading = read(raw);
    let verp = verp();
    let tags = tag_of(&verp);
    let no_tags = |_: &str| None;
    let tag_of: &dyn Fn(&str) -> Option<Tag> = if with_verp { &tags } else { &no_tags };
    let mut wanted = Wanted::default();
    wanted.add(&reading, tag_of);
    let mut directory = Directory::default();
    for n in 1..=12 {
        let address = person(n);
        let id = crate::message::message_id("essai-2026", "example.org", &address);
        directory.offer(
            &wanted,
            &address,
            crate::address::RecipientKey::of(&address),
            &id,
        );
    }
    resolve(&reading, tag_of, with_verp, &directory)
}

/// A decision in a line: kind, `policy`, status, recipient, and how it was found.
fn summary(decision: &Decision) -> String {
    let mut words = vec![decision.report.kind.as_str().to_owned()];
    if decision.report.policy {
        words.push("policy".into());
    }
    words.extend(decision.report.status.clone());
    words.extend(decision.recipient.clone());
    if let Some(found_by) = decision.found_by {
        words.push(format!(
            "by {}",
            serde_json::to_value(found_by).unwrap().as_str().unwrap()
        ));
    }
    words.join(" ")
}

#[test]
fn each_message_of_the_corpus_gets_its_decision() {
    // (file, whom its VERP tag names, the decision with VERP on, the decision without VERP)
    #[rustfmt::skip]
    let table = [
        ("postfix-user-unknown.eml", 1, "hard 5.1.1 person01@example.com by verp", "hard 5.1.1 person01@example.com by report"),
        ("exim-failed.eml", 2, "hard 5.1.1 person02@example.com by verp", "hard 5.1.1 person02@example.com by report"),
        ("exchange-old.eml", 3, "hard 5.1.1 person03@example.com by verp", "hard 5.1.1 person03@example.com by report"),
        ("exchange-online-5.1.10.eml", 7, "hard 5.1.10 person07@example.com by verp", "hard 5.1.10 person07@example.com by report"),
        ("gmail-address-not-found.eml", 4, "hard 5.1.1 person04@example.com by verp", "hard 5.1.1 person04@example.com by report"),
        ("qmail-no-mailbox.eml", 5, "hard 5.1.1 person05@example.com by verp", "hard 5.1.1 person05@example.com by report"),
        ("arf-complaint.eml", 6, "complaint person06@example.com by verp", "unknown"),
        ("plain-undelivered-headers.eml", 8, "hard person08@example.com by verp", "hard person08@example.com by message-id"),
        ("postfix-delayed.eml", 9, "soft 4.2.2 person09@example.com by verp", "soft 4.2.2 person09@example.com by report"),
        ("policy-5.7.1.eml", 10, "soft policy 5.7.1 person10@example.com by verp", "soft policy 5.7.1 person10@example.com by report"),
        ("out-of-office.eml", 11, "not-a-bounce", "not-a-bounce"),
        ("human-reply.eml", 12, "not-a-bounce", "not-a-bounce"),
        ("random.eml", 1, "not-a-bounce", "not-a-bounce"),
    ];
    for (file, whom, with_verp, without_verp) in table {
        for (verp_on, expected) in [(true, with_verp), (false, without_verp)] {
            let decisions = decide(&fixture(file, &person(whom)), verp_on);
            let got: Vec<String> = decisions.iter().map(summary).collect();
            assert_eq!(got, [expected], "{file}, VERP {verp_on}: {decisions:#?}");
        }
    }
}

#[test]
fn with_verp_a_bounce_without_a_tag_suppresses_nobody_whatever_it_reports() {
    // Anyone can mail the bounce address a DSN naming anyone: the tag-less copy of a real one.
    let tagged = verp().envelope_sender(&person(2)).to_string();
    let raw = String::from_utf8(fixture("exim-failed.eml", &person(2))).unwrap();
    let forged = raw.replace(&format!("Delivered-To: {tagged}\n"), "");
    assert_ne!(forged, raw, "the fixture carried its tag in Delivered-To");
    let decisions = decide(forged.as_bytes(), true);
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].report.kind, Kind::Unknown, "{decisions:#?}");
    assert_eq!(decisions[0].recipient, None);
}

#[test]
fn without_verp_a_redacted_complaint_names_nobody_and_a_dsn_its_recipient() {
    let complaint = decide(&fixture("arf-complaint.eml", &person(6)), false);
    assert_eq!(complaint[0].report.kind, Kind::Unknown, "{complaint:#?}");
    assert_eq!(complaint[0].recipient, None);
    let dsn = decide(&fixture("postfix-user-unknown.eml", &person(1)), false);
    assert_eq!(dsn[0].report.kind, Kind::Hard);
    assert_eq!(dsn[0].recipient, Some(person(1)));
    assert_eq!(dsn[0].found_by, Some(FoundBy::Report));
}

#[test]
fn a_tag_that_does_not_verify_suppresses_nobody_whatever_the_report_says() {
    let raw = fixture("postfix-user-unknown.eml", &person(1));
    // One digit of the tag changed, wherever it appears.
    let tagged = verp().envelope_sender(&person(1)).to_string();
    let mut altered = tagged.clone().into_bytes();
    let at = "bounces+".len();
    altered[at] = if altered[at] == b'0' { b'1' } else { b'0' };
    let bytes = String::from_utf8(raw)
        .unwrap()
        .replace(&tagged, std::str::from_utf8(&altered).unwrap())
        .into_bytes();
    let decisions = decide(&bytes, true);
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].report.kind, Kind::Unknown, "{decisions:#?}");
    assert_eq!(decisions[0].recipient, None);
}

#[test]
fn the_reports_of_a_dsn_carry_the_servers_words() {
    let reading = read(&fixture("gmail-address-not-found.eml", &person(4)));
    assert_eq!(
        reading.message_id.as_deref(),
        Some("<6756f0a3.050a0220.3c1f2b.9d1eSMTPIN_ADDED_BROKEN@mx.google.com>")
    );
    assert!(reading.date.is_some());
    let Outcome::Reports(reports) = &reading.outcome else {
        panic!("{reading:#?}");
    };
    assert_eq!(reports[0].action.as_deref(), Some("failed"));
    assert_eq!(
        reports[0].diagnostic.as_deref(),
        Some("550 5.1.1 The email account that you tried to reach does not exist.")
    );
    assert_eq!(
        reading.clues.returned_message_id.as_deref(),
        Some("essai-2026.a21c320d63d185a735470e04@example.org")
    );
}

#[test]
fn a_message_without_an_id_is_known_by_its_bytes() {
    let raw = b"From: MAILER-DAEMON@x.example\nSubject: failure notice\n\nhello\n";
    let reading = read(raw);
    assert_eq!(reading.message_id, None);
    let id = bounce_id(&reading, raw);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(id, bounce_id(&read(raw), raw));
    assert_ne!(id, bounce_id(&reading, b"other"));
    assert!(
        matches!(reading.outcome, Outcome::Unknown(_)),
        "{reading:#?}"
    );
    assert!(matches!(read(b"").outcome, Outcome::Unknown(_)));
}

#[test]
fn a_message_kind_is_its_strongest_decision() {
    assert_eq!(
        strongest([Kind::Soft, Kind::Hard, Kind::Unknown]),
        Kind::Hard
    );
    assert_eq!(strongest([Kind::Hard, Kind::Complaint]), Kind::Complaint);
    assert_eq!(strongest([Kind::Unknown]), Kind::Unknown);
    assert_eq!(strongest([Kind::NotABounce]), Kind::NotABounce);
    assert_eq!(strongest([]), Kind::NotABounce);
}

#[test]
fn no_input_makes_it_panic() {
    // Every message of the corpus cut short anywhere, and with bytes flipped: a bounce mailbox
    // receives whatever the internet sends.
    let dir = format!("{}/tests/fixtures/bounces", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        for end in (0..raw.len()).step_by(5) {
            let _ = decide(&raw[..end], true);
        }
        let mut flipped = raw.clone();
        for i in (0..flipped.len()).step_by(11) {
            flipped[i] ^= 0x80;
        }
        let _ = decide(&flipped, true);
    }
}
