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

#[test]
fn each_person_gets_their_own_file_and_a_row_without_it_is_rejected() {
    let csv = "email,first_name,last_name,amount,receipt\n\
               person01@example.com,Un,A,10,reçus/p1.pdf\n\
               person02@example.com,Deux,B,20,reçus/absent.pdf\n\
               person03@example.com,Trois,C,30,reçus/p3.pdf\n\
               person04@example.com,Quatre,D,40,../dehors.pdf\n\
               person05@example.com,Cinq,E,50,\n\
               person06@example.com,Six,F,60,reçus/outil.exe\n";
    let fixture = Fixture::new(
        csv,
        &format!("attachments = [\"{RECEIPT}\"]\nattachment_column = \"receipt\"\n"),
    );
    std::fs::create_dir_all(fixture.path("docs")).unwrap();
    std::fs::create_dir_all(fixture.path("reçus")).unwrap();
    let shared = binary(3000);
    std::fs::write(fixture.path(RECEIPT), &shared).unwrap();
    let own = |i: usize| -> Vec<u8> { binary(1000 + i).into_iter().rev().collect() };
    std::fs::write(fixture.path("reçus/p1.pdf"), own(1)).unwrap();
    std::fs::write(fixture.path("reçus/p3.pdf"), own(3)).unwrap();
    std::fs::write(fixture.path("dehors.pdf"), b"outside").unwrap();
    std::fs::write(fixture.path("reçus/outil.exe"), own(6)).unwrap();

    // `check`: every bad row named by its line, exit 65.
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    for (line, problem) in [
        (3, "cannot read"),
        (5, "leaves the campaign's folder"),
        (6, "names no file"),
        (7, "type mailbox providers block"),
    ] {
        let found = run
            .all()
            .lines()
            .any(|l| l.contains(&format!("list.csv:{line}:")) && l.contains(problem));
        assert!(found, "line {line}: {problem}\n{}", run.all());
    }

    // `send`: only the people whose file was read, each with the shared file and their own.
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    // A blocked type is only warned about: that person is mailed.
    let received = server.wait_for(3, Duration::from_secs(10));
    // Nothing more comes.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), 3, "{}", run.all());
    for message in &received {
        let parsed = MessageParser::default().parse(&message.data).unwrap();
        let to = parsed.to().unwrap().first().unwrap().address().unwrap();
        let i = match to {
            "person01@example.com" => 1,
            "person03@example.com" => 3,
            "person06@example.com" => 6,
            other => panic!("{other} should not have been mailed"),
        };
        let found: Vec<_> = parsed.attachments().collect();
        assert_eq!(found.len(), 2, "{to}");
        assert!(found[0].contents() == shared.as_slice());
        let name = if i == 6 {
            "outil.exe".to_owned()
        } else {
            format!("p{i}.pdf")
        };
        assert_eq!(found[1].attachment_name(), Some(name.as_str()));
        assert!(found[1].contents() == own(i).as_slice(), "{to}");
    }
    assert!(run.all().contains("list.csv:3"), "{}", run.all());
}

#[test]
fn check_warns_on_blocked_types_and_size_and_names_a_missing_column() {
    let fixture = Fixture::new(&people(1), "attachments = [\"outil.exe\", \"gros.pdf\"]\n");
    std::fs::write(fixture.path("outil.exe"), b"MZ").unwrap();
    std::fs::write(fixture.path("gros.pdf"), vec![b'%'; 11 * 1024 * 1024]).unwrap();
    let run = fixture.command("check", &[]);
    let all = run.all();
    assert!(
        all.lines()
            .any(|l| l.contains("campaign.toml:9: attachments") && l.contains("outil.exe")),
        "{all}"
    );
    assert!(all.contains("past 10 MB"), "{all}");
    assert!(!all.contains("gros.pdf is of a type"), "{all}");

    let small = Fixture::new(&people(1), "attachments = [\"notes.txt\"]\n");
    small.write("notes.txt", "x");
    let run = small.command("check", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.all().contains("past 10 MB"), "{}", run.all());

    let no_column = Fixture::new(&people(1), "attachment_column = \"receipt\"\n");
    let run = no_column.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr
            .contains("campaign.toml:9: field `attachment_column`")
            && run.stderr.contains("no column `receipt`"),
        "{}",
        run.all()
    );
}

#[test]
fn a_shared_file_changed_after_sending_began_is_refused_as_a_changed_letter() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(2), "attachments = [\"rapport.pdf\"]\n");
    fixture.write("rapport.pdf", "version 1");
    let first = fixture.send(&server.url(), &["--max-messages", "1"]);
    assert_eq!(first.code, 75, "{}", first.all());
    fixture.write("rapport.pdf", "version 2");
    let refused = fixture.send(&server.url(), &[]);
    assert_eq!(refused.code, 65, "{}", refused.all());
    assert!(refused.stderr.contains("--allow-changed-letter"));
    assert_eq!(server.wait_for(1, Duration::from_secs(5)).len(), 1);
}

/// The highest resident set size (VmHWM) of process `pid` so far, in KiB; `None` once gone.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn large_files_of_their_own_do_not_pile_up_in_memory_ahead_of_a_slow_relay() {
    // 60 people with a 2 MB receipt each (~2.7 MB a message in base64), a relay that takes
    // half a second a message: the producer renders far faster than the relay takes, and the
    // queue's counts alone (128 messages ahead) would soon hold every message, ~160 MB.
    const PEOPLE: usize = 60;
    let mut csv = String::from("email,first_name,last_name,amount,receipt\n");
    for i in 1..=PEOPLE {
        csv.push_str(&format!(
            "person{i:02}@example.com,P{i},N,10,reçus/p{i}.pdf\n"
        ));
    }
    let fixture = Fixture::new(&csv, "attachment_column = \"receipt\"\n");
    std::fs::create_dir_all(fixture.path("reçus")).unwrap();
    for i in 1..=PEOPLE {
        std::fs::write(fixture.path(&format!("reçus/p{i}.pdf")), binary(2 << 20)).unwrap();
    }
    let server = SmtpServer::start_in_background(
        Behavior::accept_all().reply_delay(Duration::from_millis(500)),
    );
    let mut running = fixture.start_send(&server.url(), &[]);
    let pid = running.pid();
    let mut peak = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while running.is_running() && std::time::Instant::now() < deadline {
        peak = peak_rss_kib(pid).unwrap_or(0).max(peak);
        std::thread::sleep(Duration::from_millis(10));
    }
    let run = running.wait(Duration::from_secs(10)).expect("the run ends");
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        server.wait_for(PEOPLE, Duration::from_secs(10)).len(),
        PEOPLE
    );
    // 32 MB of messages at most, the one being made, the copies on their way out, the
    // process's own (a debug build): 84 MB here, where without the bound it was 161.
    eprintln!("peak RSS {} MiB", peak / 1024);
    assert!(peak > 0, "the run's memory was read");
    assert!(peak < 120 * 1024, "peak RSS {} MiB", peak / 1024);
}

#[test]
fn a_message_larger_than_the_bytes_in_memory_still_goes_with_the_others() {
    // A 28 MB receipt makes a message of about 38 MB, past the 32 MB bound on messages in
    // memory: it waits until it has the bound to itself, and goes; nobody is held for good.
    let sizes = [1_000, 28 << 20, 1_000, 28 << 20, 1_000];
    let mut csv = String::from("email,first_name,last_name,amount,receipt\n");
    for i in 1..=sizes.len() {
        csv.push_str(&format!("person{i}@example.com,P{i},N,10,reçus/p{i}.pdf\n"));
    }
    let fixture = Fixture::new(&csv, "attachment_column = \"receipt\"\n");
    std::fs::create_dir_all(fixture.path("reçus")).unwrap();
    for (i, size) in (1..).zip(sizes) {
        std::fs::write(fixture.path(&format!("reçus/p{i}.pdf")), binary(size)).unwrap();
    }
    let server = SmtpServer::start_in_background(
        Behavior::accept_all().reply_delay(Duration::from_millis(100)),
    );
    // Bounded: a message waiting for more bytes than there are would hang the run.
    let run = fixture
        .start_send(&server.url(), &[])
        .wait(Duration::from_secs(60))
        .unwrap_or_else(|run| panic!("the run hangs: {}", run.all()));
    assert_eq!(run.code, 0, "{}", run.all());
    let received = server.wait_for(5, Duration::from_secs(30));
    assert_eq!(received.len(), 5, "{}", run.all());
    assert_eq!(
        received.iter().filter(|m| m.data.len() > 32 << 20).count(),
        2,
        "both large messages whole"
    );
}
