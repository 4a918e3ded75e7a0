//! Attachments: files named in `attachments` reach every person as parts of a `multipart/mixed`
//! that an independent parser (mail-parser) reads back byte for byte, with their names (RFC 2231
//! for a non-ASCII one) and content types, the letter's text and HTML unchanged, DKIM-signed
//! over the whole; a path that leaves the campaign's folder, or a file that cannot be read,
//! makes the campaign unsendable (65), named by its line.

use std::collections::BTreeMap;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};

use crate::support::dkim;
use crate::support::harness::{Fixture, people};
use crate::support::smtp_server::{Behavior, SmtpServer};

const RECEIPT: &str = "docs/reçu fiscal 2026.pdf";

/// Bytes no text encoding would keep: every byte value, CR and LF alone, NULs.
fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

/// Sends the campaign of `fixture` to `n` people; the messages as the server received them, by
/// recipient.
fn send_all(fixture: &Fixture, n: usize) -> BTreeMap<String, Vec<u8>> {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let received = server.wait_for(n, Duration::from_secs(10));
    assert_eq!(received.len(), n, "{}", run.all());
    received
        .into_iter()
        .map(|message| {
            let parsed = MessageParser::default().parse(&message.data).unwrap();
            let to = parsed.to().unwrap().first().unwrap().address().unwrap();
            (to.to_owned(), message.data.clone())
        })
        .collect()
}

#[test]
fn shared_files_parse_back_byte_for_byte_with_the_letter_unchanged() {
    let pdf = binary(150_000);
    let notes = "Rapport 2026\r\nligne seule\nfin sans saut"
        .as_bytes()
        .to_vec();
    let with = Fixture::new(
        &people(2),
        &format!("attachments = [\"{RECEIPT}\", \"notes.txt\"]\n"),
    );
    std::fs::create_dir_all(with.path("docs")).unwrap();
    std::fs::write(with.path(RECEIPT), &pdf).unwrap();
    std::fs::write(with.path("notes.txt"), &notes).unwrap();
    let without = Fixture::new(&people(2), "");

    let attached = send_all(&with, 2);
    let plain = send_all(&without, 2);
    for (to, raw) in &attached {
        let message = MessageParser::default().parse(raw).unwrap();
        let top = message.content_type().unwrap();
        assert_eq!((top.ctype(), top.subtype()), ("multipart", Some("mixed")));
        let found: Vec<_> = message.attachments().collect();
        assert_eq!(found.len(), 2, "{to}");
        assert_eq!(found[0].attachment_name(), Some("reçu fiscal 2026.pdf"));
        let ct = found[0].content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("application", Some("pdf")));
        assert!(found[0].contents() == pdf.as_slice(), "the PDF changed");
        assert_eq!(found[1].attachment_name(), Some("notes.txt"));
        assert_eq!(found[1].contents(), notes.as_slice());
        let ct = found[1].content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
        // RFC 2231 for the non-ASCII name, base64 lines within 76 characters.
        let text = String::from_utf8(raw.clone()).expect("an encoded message is ASCII");
        assert!(text.contains("filename*"), "{text}");
        assert!(text.lines().all(|line| line.len() <= 78));

        let alone = MessageParser::default().parse(&plain[to]).unwrap();
        assert_eq!(message.body_text(0), alone.body_text(0), "{to}");
        assert_eq!(message.body_html(0), alone.body_html(0), "{to}");
        assert!(message.body_html(0).unwrap().contains("Prénom"));
    }
}

#[test]
fn dkim_covers_a_message_with_an_attachment() {
    let keys = tempfile::tempdir().unwrap();
    let key = dkim::generate(keys.path(), "ed25519");
    let fixture = Fixture::new(
        &people(1),
        &format!(
            "attachments = [\"{RECEIPT}\"]\n[dkim]\ndomain = \"example.org\"\n\
             selector = \"s2026\"\nkey = '{}'\n",
            key.pem.display()
        ),
    );
    std::fs::create_dir_all(fixture.path("docs")).unwrap();
    std::fs::write(fixture.path(RECEIPT), binary(20_000)).unwrap();
    let received = send_all(&fixture, 1);
    let raw = received.values().next().unwrap();
    let verdict = dkim::verify(raw, "s2026", "example.org", &key.record);
    assert!(verdict.passed, "{}", verdict.report);
    // The attachment is under the signature: changing one of its bytes breaks it.
    let text = String::from_utf8(raw.clone()).unwrap();
    let at = text.find("filename").unwrap();
    let body = at + text[at..].find("\r\n\r\n").unwrap() + 4;
    let mut tampered = raw.clone();
    tampered[body + 5] = if tampered[body + 5] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let verdict = dkim::verify(&tampered, "s2026", "example.org", &key.record);
    assert!(!verdict.passed, "{}", verdict.report);
}

#[test]
fn a_path_out_of_the_folder_or_a_missing_file_is_refused_with_its_line() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "not for donors").unwrap();
    let absolute = outside.path().join("secret.txt");
    let cases = [
        ("../secret.txt".to_owned(), "leaves the campaign's folder"),
        (
            "docs/../../secret.txt".to_owned(),
            "leaves the campaign's folder",
        ),
        (
            absolute.display().to_string(),
            "leaves the campaign's folder",
        ),
        ("lien.txt".to_owned(), "leaves the campaign's folder"),
        ("docs/absent.pdf".to_owned(), "cannot read"),
    ];
    for (path, problem) in cases {
        let fixture = Fixture::new(&people(1), &format!("attachments = ['{path}']\n"));
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), fixture.path("lien.txt"))
            .unwrap();
        // The line: the fixture's campaign has 8 lines before `extra`.
        let place = "campaign.toml:9: field `attachments`";
        for command in ["check", "send"] {
            let server = SmtpServer::start_in_background(Behavior::accept_all());
            let run = if command == "send" {
                fixture.send(&server.url(), &[])
            } else {
                fixture.command("check", &[])
            };
            assert_eq!(run.code, 65, "{path} {command}: {}", run.all());
            assert!(run.stderr.contains(place), "{path}: {}", run.all());
            assert!(run.stderr.contains(problem), "{path}: {}", run.all());
            assert!(server.messages().is_empty());
        }
    }
}
