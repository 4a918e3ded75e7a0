//! `missive bounces`, the real binary over the written corpus of `tests/fixtures/bounces/`:
//! files, a Maildir, an mbox and standard input; the suppression lists and the bounce log it
//! writes, byte for byte; a second read that changes nothing; and the next `send`, to a real
//! SMTP server, skipping exactly the people who bounced or complained.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::harness::{Fixture, Run, people};
use crate::support::smtp_server::{Behavior, SmtpServer};

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";
const VERP: &str = "[bounces]\nreturn_path = \"bounces@example.org\"\n";
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bounces");

fn person(n: u32) -> String {
    format!("person{n:02}@example.com")
}

/// Whom each fixture's `VERP-TAG` stands for.
fn tagged_for(file: &str) -> u32 {
    match file {
        "exim-failed.eml" => 2,
        "exchange-old.eml" => 3,
        "gmail-address-not-found.eml" => 4,
        "qmail-no-mailbox.eml" => 5,
        "arf-complaint.eml" => 6,
        "exchange-online-5.1.10.eml" => 7,
        "plain-undelivered-headers.eml" => 8,
        "postfix-delayed.eml" => 9,
        "policy-5.7.1.eml" => 10,
        _ => 1,
    }
}

/// The campaign's VERP addresses, as `send` makes them.
fn verp() -> missive::verp::Verp {
    let return_path: lettre::Address = "bounces@example.org".parse().unwrap();
    let secret = missive::unsubscribe::Secret::new(SECRET).unwrap();
    missive::verp::Verp::new(&return_path, "essai-2026", secret).unwrap()
}

/// The return path of the message to person `n`: where that person's bounces come back.
fn return_path_of(n: u32) -> String {
    verp().envelope_sender(&person(n)).to_string()
}

/// The corpus, as the campaign's own bounces: `VERP-TAG` made into the real tag of its person.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let verp = verp();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let sender = verp.envelope_sender(&person(tagged_for(&name))).to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            (
                name,
                text.replace("bounces+VERP-TAG@example.org", &sender)
                    .into_bytes(),
            )
        })
        .collect();
    files.sort();
    files
}

fn write_corpus(fixture: &Fixture, dir: &str) -> Vec<PathBuf> {
    corpus()
        .into_iter()
        .map(|(name, bytes)| {
            let path = fixture.path(&format!("{dir}/{name}"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

fn bounces(fixture: &Fixture, paths: &[&Path], more: &[&str]) -> Run {
    let campaign = fixture.campaign();
    let mut args = vec!["bounces", campaign.to_str().unwrap()];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    args.extend_from_slice(more);
    fixture.run(&args, &[("MISSIVE_UNSUBSCRIBE_SECRET", SECRET)])
}

fn json_lines(run: &Run) -> Vec<serde_json::Value> {
    run.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {}", run.all())))
        .collect()
}

fn read(fixture: &Fixture, relative: &str) -> String {
    std::fs::read_to_string(fixture.path(relative)).unwrap_or_default()
}

fn lines(addresses: &[u32]) -> String {
    addresses.iter().map(|&n| person(n) + "\n").collect()
}

#[test]
fn the_corpus_lands_in_the_right_lists_once() {
    let fixture = Fixture::new(&people(12), VERP);
    let files = write_corpus(&fixture, "inbox");
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let run = bounces(&fixture, &paths, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let printed = json_lines(&run);
    let got: Vec<(String, String, Vec<String>)> = printed
        .iter()
        .map(|line| {
            let source = line["source"].as_str().unwrap();
            let name = Path::new(source).file_name().unwrap().to_str().unwrap();
            let recipients = line["recipients"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect();
            (
                name.to_owned(),
                line["kind"].as_str().unwrap().to_owned(),
                recipients,
            )
        })
        .collect();
    let expected: Vec<(String, String, Vec<String>)> = [
        ("arf-complaint.eml", "complaint", Some(6)),
        ("exchange-old.eml", "hard", Some(3)),
        ("exchange-online-5.1.10.eml", "hard", Some(7)),
        ("exim-failed.eml", "hard", Some(2)),
        ("gmail-address-not-found.eml", "hard", Some(4)),
        ("human-reply.eml", "not-a-bounce", None),
        ("out-of-office.eml", "not-a-bounce", None),
        ("plain-undelivered-headers.eml", "hard", Some(8)),
        ("policy-5.7.1.eml", "soft", Some(10)),
        ("postfix-delayed.eml", "soft", Some(9)),
        ("postfix-user-unknown.eml", "hard", Some(1)),
        ("qmail-no-mailbox.eml", "hard", Some(5)),
        ("random.eml", "not-a-bounce", None),
    ]
    .into_iter()
    .map(|(name, kind, whom)| {
        (
            name.to_owned(),
            kind.to_owned(),
            whom.map(person).into_iter().collect(),
        )
    })
    .collect();
    assert_eq!(got, expected, "{}", run.all());
    assert!(printed.iter().all(|line| line["already_read"] == false));

    // The lists, in the order the messages were read; the soft bounces are only counted.
    let bounced = read(&fixture, "suppression/bounced.txt");
    let complained = read(&fixture, "suppression/complained.txt");
    assert_eq!(bounced, lines(&[3, 7, 2, 4, 8, 1, 5]));
    assert_eq!(complained, lines(&[6]));
    let log = read(&fixture, "essai-2026.bounces.jsonl");
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 13, "{log}");
    let postfix = records
        .iter()
        .find(|r| r["bounce"] == "<20261129091203.4Zk1Lm0Q2Rz9sVn@relay.example.org>")
        .unwrap();
    assert_eq!(postfix["recipient"], person(1));
    assert_eq!(postfix["status"], "5.1.1");
    assert_eq!(postfix["found_by"], "verp");
    assert_eq!(postfix["suppressed"], "bounced");
    let policy = records
        .iter()
        .find(|r| r["recipient"] == person(10))
        .unwrap();
    assert_eq!(
        (policy["kind"].as_str(), policy["policy"].as_bool()),
        (Some("soft"), Some(true))
    );
    assert_eq!(
        policy["soft_count"],
        serde_json::Value::Null,
        "never counted"
    );
    assert_eq!(policy["suppressed"], serde_json::Value::Null);

    // A second read changes nothing, byte for byte, and says so.
    let again = bounces(&fixture, &paths, &["--json"]);
    assert_eq!(again.code, 0, "{}", again.all());
    let printed = json_lines(&again);
    assert_eq!(printed.len(), 13);
    assert!(
        printed.iter().all(|line| line["already_read"] == true),
        "{}",
        again.all()
    );
    assert_eq!(printed[0]["kind"], "complaint");
    assert_eq!(printed[0]["recipients"][0], person(6));
    assert_eq!(read(&fixture, "suppression/bounced.txt"), bounced);
    assert_eq!(read(&fixture, "suppression/complained.txt"), complained);
    assert_eq!(read(&fixture, "essai-2026.bounces.jsonl"), log);
    for file in &files {
        assert!(file.exists(), "{} was moved or deleted", file.display());
    }
}

#[test]
fn without_the_secret_a_verp_campaign_refuses_to_read_bounces_and_writes_nothing() {
    // Without the key no tag verifies, and reading bounces by what they report would let a
    // forged one suppress anyone: the run refuses, and the messages wait for a run with it.
    let fixture = Fixture::new(&people(12), VERP);
    let files = write_corpus(&fixture, "inbox");
    let campaign = fixture.campaign();
    let mut args = vec!["bounces", campaign.to_str().unwrap()];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let run = fixture.run(&args, &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("MISSIVE_UNSUBSCRIBE_SECRET") && run.stderr.contains("return_path"),
        "{}",
        run.all()
    );
    assert!(!fixture.path("suppression").exists(), "{}", run.all());
    assert!(!fixture.path("essai-2026.bounces.jsonl").exists());
    for file in &files {
        assert!(file.exists(), "{} is left where it was", file.display());
    }
}

#[test]
fn with_verp_a_forged_bounce_without_a_tag_suppresses_nobody() {
    // Anyone can mail the bounce address: a DSN naming two people, sent to the return path
    // itself (no tag), in the form of a real Postfix bounce.
    let fixture = Fixture::new(&people(12), VERP);
    let (_, real) = corpus()
        .into_iter()
        .find(|(name, _)| name == "exim-failed.eml")
        .unwrap();
    let forged = String::from_utf8(real)
        .unwrap()
        .replace(&return_path_of(2), "bounces@example.org");
    fixture.write("forged.eml", &forged);
    let run = bounces(&fixture, &[&fixture.path("forged.eml")], &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(json_lines(&run)[0]["kind"], "unknown", "{}", run.all());
    assert!(
        !fixture.path("suppression/bounced.txt").exists(),
        "{}",
        run.all()
    );
}

#[test]
fn a_maildir_an_mbox_and_standard_input() {
    let fixture = Fixture::new(&people(12), VERP);
    let corpus = corpus();
    let by_name = |name: &str| corpus.iter().find(|(n, _)| n == name).unwrap().1.clone();
    // A Maildir: one bounce in new/, one in cur/ (with its flags), tmp/ ignored.
    fixture.write("Maildir/tmp/.keep", "");
    let text = |name: &str| String::from_utf8(by_name(name)).unwrap();
    fixture.write("Maildir/new/1764400000.1.host", &text("exim-failed.eml"));
    fixture.write(
        "Maildir/cur/1764400001.2.host:2,S",
        &text("qmail-no-mailbox.eml"),
    );
    // An mbox of two messages; the second has no Message-ID and a body line the mbox quotes.
    let plain = format!(
        "From: MAILER-DAEMON@mx.example.net\nTo: {}\nSubject: failure notice\n\
         \n<person07@example.com>:\nSorry, no mailbox here by that name. (#5.1.1)\n\nFrom the start.\n",
        return_path_of(7)
    );
    let mut mbox = b"From MAILER-DAEMON Sun Nov 29 10:00:00 2026\n".to_vec();
    mbox.extend(by_name("gmail-address-not-found.eml"));
    mbox.extend(b"\nFrom MAILER-DAEMON Sun Nov 29 11:00:00 2026\n");
    mbox.extend(
        plain
            .replace("\nFrom the start", "\n>From the start")
            .as_bytes(),
    );
    std::fs::write(fixture.path("bounces.mbox"), &mbox).unwrap();

    let (maildir, mbox_path) = (fixture.path("Maildir"), fixture.path("bounces.mbox"));
    let run = bounces(&fixture, &[&maildir, &mbox_path], &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let printed = json_lines(&run);
    let sources: Vec<&str> = printed
        .iter()
        .map(|l| l["source"].as_str().unwrap())
        .collect();
    let mbox_source = mbox_path.display().to_string();
    assert_eq!(
        sources,
        [
            maildir.join("new/1764400000.1.host").display().to_string(),
            maildir
                .join("cur/1764400001.2.host:2,S")
                .display()
                .to_string(),
            format!("{mbox_source}#1"),
            format!("{mbox_source}#2"),
        ],
        "{}",
        run.all()
    );
    assert_eq!(
        read(&fixture, "suppression/bounced.txt"),
        lines(&[2, 5, 4, 7])
    );

    // The same message given whole is known by the hash of its bytes: the mbox's `>From` was
    // unquoted, so it is the same message and nothing happens again.
    std::fs::write(fixture.path("plain.eml"), &plain).unwrap();
    let again = bounces(&fixture, &[&fixture.path("plain.eml")], &["--json"]);
    assert_eq!(
        json_lines(&again)[0]["already_read"],
        true,
        "{}",
        again.all()
    );

    // Standard input, as Postfix's pipe hands a bounce over.
    let campaign = fixture.campaign();
    let mut child = Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["bounces", campaign.to_str().unwrap(), "-", "--json"])
        .env("MISSIVE_UNSUBSCRIBE_SECRET", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&by_name("postfix-user-unknown.eml"))
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (line["source"].as_str(), line["kind"].as_str()),
        (Some("-"), Some("hard"))
    );
    assert_eq!(
        read(&fixture, "suppression/bounced.txt"),
        lines(&[2, 5, 4, 7, 1])
    );
}

#[test]
fn soft_bounces_make_an_address_bounced_at_the_limit_within_the_window() {
    let extra = format!("{VERP}soft_limit = 2\nsoft_days = 30\n");
    let fixture = Fixture::new(&people(12), &extra);
    let delayed = String::from_utf8(
        corpus()
            .into_iter()
            .find(|(n, _)| n == "postfix-delayed.eml")
            .unwrap()
            .1,
    )
    .unwrap();
    // Three soft bounces of person09: 40 days apart, then 10 days apart.
    let dated = |id: &str, date: &str| {
        delayed
            .replace("<20261129131203.8Qw2Er4Ty6Ui@relay.example.org>", id)
            .replace(
                "Date: Sun, 29 Nov 2026 14:12:03 +0100 (CET)",
                &format!("Date: {date}"),
            )
    };
    fixture.write(
        "soft/1.eml",
        &dated(
            "<soft-1@relay.example.org>",
            "Mon, 7 Sep 2026 10:00:00 +0000",
        ),
    );
    fixture.write(
        "soft/2.eml",
        &dated(
            "<soft-2@relay.example.org>",
            "Sat, 17 Oct 2026 10:00:00 +0000",
        ),
    );
    fixture.write(
        "soft/3.eml",
        &dated(
            "<soft-3@relay.example.org>",
            "Tue, 27 Oct 2026 10:00:00 +0000",
        ),
    );
    let run = bounces(
        &fixture,
        &[&fixture.path("soft/1.eml"), &fixture.path("soft/2.eml")],
        &["--json"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let counts: Vec<_> = json_lines(&run)
        .iter()
        .map(|l| l["decisions"][0]["soft_count"].clone())
        .collect();
    assert_eq!(
        counts,
        [1, 1],
        "40 days apart: the first has left the window"
    );
    assert!(!fixture.path("suppression/bounced.txt").exists());
    // Read again with the third: the first two are not counted twice.
    let run = bounces(
        &fixture,
        &[
            &fixture.path("soft/1.eml"),
            &fixture.path("soft/2.eml"),
            &fixture.path("soft/3.eml"),
        ],
        &["--json"],
    );
    let printed = json_lines(&run);
    assert_eq!(printed[2]["decisions"][0]["soft_count"], 2, "{}", run.all());
    assert_eq!(printed[2]["decisions"][0]["suppressed"], "bounced");
    assert_eq!(read(&fixture, "suppression/bounced.txt"), lines(&[9]));
}

#[test]
fn refusals_by_policy_are_recorded_but_never_counted_toward_a_bounce() {
    let extra = format!("{VERP}soft_limit = 2\nsoft_days = 30\n");
    let fixture = Fixture::new(&people(12), &extra);
    let policy = String::from_utf8(
        corpus()
            .into_iter()
            .find(|(n, _)| n == "policy-5.7.1.eml")
            .unwrap()
            .1,
    )
    .unwrap();
    // A block list refuses person10 in three campaigns of one week: the sender's trouble, not
    // the mailbox's. Each is a message of its own (its own Message-ID).
    let id = policy
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("the fixture has a Message-ID")
        .to_owned();
    let paths: Vec<PathBuf> = (1..=3)
        .map(|n| {
            let name = format!("policy/{n}.eml");
            fixture.write(
                &name,
                &policy.replace(&id, &format!("<policy-{n}@relay.example.org>")),
            );
            fixture.path(&name)
        })
        .collect();
    let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let run = bounces(&fixture, &paths, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let printed = json_lines(&run);
    assert_eq!(printed.len(), 3, "{}", run.all());
    for line in &printed {
        assert_eq!(line["kind"], "soft", "{line}");
        assert_eq!(line["decisions"][0]["policy"], true, "{line}");
        assert_eq!(line["decisions"][0]["suppressed"], serde_json::Value::Null);
    }
    assert!(
        !fixture.path("suppression/bounced.txt").exists(),
        "{}",
        run.all()
    );
}

#[test]
fn an_unreadable_path_exits_1_and_a_broken_campaign_65_and_neither_writes() {
    let fixture = Fixture::new(&people(3), VERP);
    let missing = fixture.path("no-such-file.eml");
    let run = bounces(&fixture, &[&missing], &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("no-such-file.eml"), "{}", run.all());
    let folder = fixture.path("templates");
    let run = bounces(&fixture, &[&folder], &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("not a Maildir"), "{}", run.all());
    assert!(!fixture.path("essai-2026.bounces.jsonl").exists());

    fixture.write("campaign.toml", "id = \"essai-2026\"\nsubject = 3\n");
    let postfix = fixture.path("bounce.eml");
    let (_, bytes) = corpus()
        .into_iter()
        .find(|(name, _)| name == "postfix-user-unknown.eml")
        .unwrap();
    std::fs::write(&postfix, bytes).unwrap();
    let run = bounces(&fixture, &[&postfix], &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(!fixture.path("suppression").exists());
}

#[test]
fn the_next_send_skips_exactly_the_bounced_and_the_complained() {
    // The first campaign goes out to everyone; bounces come back for some, a complaint for one,
    // and one free-text bounce sent back to the return path the server received for person11.
    let first = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(
        &people(12),
        &format!("{VERP}[smtp]\nurl = \"{}\"\n", first.url()),
    );
    let campaign = fixture.campaign();
    let run = fixture.run(
        &["send", campaign.to_str().unwrap()],
        &[("MISSIVE_UNSUBSCRIBE_SECRET", SECRET)],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let sent = first.wait_for(12, Duration::from_secs(10));
    let to_eleven = sent
        .iter()
        .find(|m| m.rcpt_to == [person(11)])
        .expect("person11 was mailed");
    let headers = String::from_utf8_lossy(&to_eleven.data);
    let headers = &headers[..headers.find("\r\n\r\n").unwrap()];
    let message_id_line = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        .unwrap();
    let returned = format!(
        "From: MAILER-DAEMON@mx.example.com\nTo: {}\nSubject: Undelivered Mail Returned to Sender\n\
         Message-ID: <ndr-11@mx.example.com>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n\
         --b\nContent-Type: text/plain\n\nYour message could not be delivered: no such user.\n\n\
         --b\nContent-Type: text/rfc822-headers\n\nFrom: Mozilla <dons@example.org>\n{message_id_line}\n\n--b--\n",
        to_eleven.mail_from
    );
    let files = write_corpus(&fixture, "inbox");
    fixture.write("inbox/returned-11.eml", &returned);
    let mut paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let returned_path = fixture.path("inbox/returned-11.eml");
    paths.push(&returned_path);
    let run = bounces(&fixture, &paths, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        read(&fixture, "suppression/bounced.txt"),
        lines(&[3, 7, 2, 4, 8, 1, 5, 11])
    );

    // The next campaign, from the same folder, reads the same lists.
    let next = SmtpServer::start_in_background(Behavior::accept_all());
    let text = std::fs::read_to_string(&campaign)
        .unwrap()
        .replace("essai-2026", "essai-2027");
    fixture.write("next.toml", &text);
    let run = fixture.run(
        &[
            "send",
            fixture.path("next.toml").to_str().unwrap(),
            "--smtp",
            &next.url(),
        ],
        &[("MISSIVE_UNSUBSCRIBE_SECRET", SECRET)],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let received = next.wait_for(3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    let mut got: Vec<String> = next
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    got.sort();
    let expected: Vec<String> = [9, 10, 12].into_iter().map(person).collect();
    assert_eq!(got, expected, "{} messages: {}", received.len(), run.all());
}

#[test]
fn runs_at_the_same_time_decide_each_message_once() {
    let fixture = Fixture::new(&people(12), VERP);
    let files = write_corpus(&fixture, "inbox");
    let campaign = fixture.campaign();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_missive"))
                .arg("bounces")
                .arg(&campaign)
                .args(&files)
                .env("MISSIVE_UNSUBSCRIBE_SECRET", SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        let status = crate::support::wait_or_kill(&mut child, Duration::from_secs(20));
        assert_eq!(status.ok().and_then(|s| s.code()), Some(0));
    }
    let log = read(&fixture, "essai-2026.bounces.jsonl");
    assert_eq!(log.lines().count(), 13, "each message decided once:\n{log}");
    let mut bounced: Vec<String> = read(&fixture, "suppression/bounced.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    bounced.sort();
    assert_eq!(bounced, [1, 2, 3, 4, 5, 7, 8].map(person));
    assert_eq!(read(&fixture, "suppression/complained.txt"), lines(&[6]));
}

/// Anyone may mail the bounce address: a message of a few megabytes nesting 60,000
/// `message/rfc822` parts in each other must not abort the run (a stack overflow there ended
/// every run over the folder, and the message is never deleted). The bounce beside it is read.
#[test]
fn a_message_nesting_messages_without_end_does_not_stop_the_run() {
    let fixture = Fixture::new(&people(12), VERP);
    let files = write_corpus(&fixture, "inbox");
    let postfix = files
        .iter()
        .find(|f| f.ends_with("postfix-user-unknown.eml"))
        .unwrap();
    let mut deep = String::from(
        "From: MAILER-DAEMON@relay.example.net\r\nSubject: Undelivered Mail\r\n\
         Message-ID: <deep@relay.example.net>\r\nContent-Type: message/rfc822\r\n\r\n",
    );
    for _ in 0..60_000 {
        deep.push_str("Subject: x\r\nContent-Type: message/rfc822\r\n\r\n");
    }
    deep.push_str("Subject: y\r\n\r\nbody\r\n");
    let path = fixture.path("inbox/deep.eml");
    std::fs::write(&path, deep).unwrap();
    let run = bounces(&fixture, &[&path, postfix], &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let printed = json_lines(&run);
    assert_eq!(printed.len(), 2, "{}", run.all());
    assert_ne!(printed[0]["kind"], "hard", "{}", run.all());
    assert_eq!(printed[1]["kind"], "hard", "{}", run.all());
    assert_eq!(read(&fixture, "suppression/bounced.txt"), lines(&[1]));
}

/// One delay notice naming a person in several blocks (an alias expanded to three mailboxes, or
/// a report written so on purpose) is one soft bounce, not `soft_limit` of them.
#[test]
fn one_message_counts_one_soft_bounce_a_person_whatever_its_blocks() {
    let fixture = Fixture::new(&people(4), "");
    let block = "Final-Recipient: rfc822; person03@example.com\r\nAction: delayed\r\n\
                 Status: 4.4.7\r\n\r\n";
    let dsn = format!(
        "From: MAILER-DAEMON@relay.example.net\r\nTo: dons@example.org\r\n\
         Subject: Delayed Mail (still being retried)\r\nMessage-ID: <delay1@relay.example.net>\r\n\
         Date: Sun, 29 Nov 2026 10:12:03 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"z\"\r\n\r\n\
         --z\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; relay.example.net\r\n\r\n{}--z--\r\n",
        block.repeat(3)
    );
    let path = fixture.path("delayed.eml");
    std::fs::write(&path, dsn).unwrap();
    let run = bounces(&fixture, &[&path], &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let printed = json_lines(&run);
    let counts: Vec<&serde_json::Value> = printed[0]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["soft_count"])
        .collect();
    assert_eq!(counts, [1, 1, 1], "{}", run.all());
    assert_eq!(
        read(&fixture, "suppression/bounced.txt"),
        "",
        "{}",
        run.all()
    );
}
