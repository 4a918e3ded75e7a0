//! Unsubscribe and suppression, end to end: what an SMTP server receives carries the person's
//! one-click unsubscribe headers (byte for byte) and footer link, the link's token verifies with
//! `missive unsubscribe-token verify`, and people on a suppression list are never mailed, are
//! counted by `check` and reported by `status`. The last test is the "done when": the
//! shipped campaign, DKIM-signed, received by a real SMTP server.

use std::path::Path;
use std::time::Duration;

use crate::support::dkim;
use crate::support::harness::{Fixture, Run, people, repo};
use crate::support::smtp_server::{Behavior, SmtpServer};

const SECRET_VAR: &str = "MISSIVE_UNSUBSCRIBE_SECRET";
const SECRET: &str = "a-test-key-for-unsubscribe-tokens-0123456789";
const UNSUBSCRIBE: &str = "[unsubscribe]\nmailto = \"desabonnement@example.org\"\n\
                           url = \"https://dons.example.org/desabonnement\"\n";

fn send_with_secret(fixture: &Fixture, server: &SmtpServer, secret: Option<&str>) -> Run {
    let campaign = fixture.campaign();
    let url = server.url();
    let env: Vec<(&str, &str)> = secret.map(|s| (SECRET_VAR, s)).into_iter().collect();
    fixture.run(&["send", campaign.to_str().unwrap(), "--smtp", &url], &env)
}

fn verify(link: &str, secret: &str) -> Run {
    let fixture = Fixture::new(&people(0), "");
    fixture.run(
        &["unsubscribe-token", "verify", link],
        &[(SECRET_VAR, secret)],
    )
}

/// The unfolded value of header `name` in a raw message.
fn header(message: &str, name: &str) -> String {
    let head = message.split("\r\n\r\n").next().unwrap();
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in\n{head}"))
        .to_owned()
}

/// The https link of a `List-Unsubscribe` value.
fn https_link(list_unsubscribe: &str) -> String {
    let start = list_unsubscribe.find("<https://").expect("an https link") + 1;
    let end = start + list_unsubscribe[start..].find('>').unwrap();
    list_unsubscribe[start..end].to_owned()
}

fn text_and_html(raw: &[u8]) -> (String, String) {
    let parsed = mail_parser::MessageParser::default().parse(raw).unwrap();
    (
        parsed.body_text(0).unwrap().into_owned(),
        parsed.body_html(0).unwrap().into_owned(),
    )
}

#[test]
fn every_message_carries_one_click_unsubscribe_and_the_footer_link_verifies() {
    let fixture = Fixture::new(&people(3), UNSUBSCRIBE);
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = send_with_secret(&fixture, &server, Some(SECRET));
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.all().contains(SECRET), "{}", run.all());
    let received = server.wait_for(3, Duration::from_secs(10));
    assert_eq!(received.len(), 3);
    for message in &received {
        let raw = String::from_utf8(message.data.clone()).unwrap();
        let rcpt = &message.rcpt_to[0];
        let token = header(&raw, "List-Unsubscribe")
            .rsplit("t=")
            .next()
            .unwrap()
            .trim_end_matches('>')
            .to_owned();
        let expected = format!(
            "List-Unsubscribe: <mailto:desabonnement@example.org?subject=unsubscribe>,\r\n \
             <https://dons.example.org/desabonnement?c=essai-2026&e={}&t={token}>\r\n\
             List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            rcpt.replace('@', "%40")
        );
        assert!(raw.contains(&expected), "{expected}\nnot in\n{raw}");
        assert_eq!(token.len(), 32, "{token}");

        let link = https_link(&header(&raw, "List-Unsubscribe"));
        let (text, html) = text_and_html(&message.data);
        assert!(text.contains(&link), "the text footer lacks {link}\n{text}");
        assert!(
            html.contains(&format!("href=\"{}\"", link.replace('&', "&amp;"))),
            "the HTML footer lacks {link}"
        );
        assert!(text.contains("Se désabonner en un clic"), "{text}");

        let ok = verify(&link, SECRET);
        assert_eq!(ok.code, 0, "{}", ok.all());
        assert_eq!(
            ok.stdout,
            format!("valid: unsubscribe {rcpt} from campaign essai-2026\n")
        );
    }

    // A link for someone else, or checked with another key, is refused.
    // (Deliveries run concurrently: find person01's message, whatever the order.)
    let first = received
        .iter()
        .find(|m| m.rcpt_to == ["person01@example.com"])
        .unwrap();
    let raw = String::from_utf8(first.data.clone()).unwrap();
    let link = https_link(&header(&raw, "List-Unsubscribe"));
    let forged = link.replace("person01", "person02");
    assert_ne!(forged, link);
    let run = verify(&forged, SECRET);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("invalid: the token does not match"),
        "{}",
        run.all()
    );
    let run = verify(&link, "another-key-another-key-another-key-42");
    assert_eq!(run.code, 1, "{}", run.all());
    let fixture = Fixture::new(&people(0), "");
    let run = fixture.run(
        &["unsubscribe-token", "verify", "--json", &link],
        &[(SECRET_VAR, SECRET)],
    );
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["address"], "person01@example.com");
}

#[test]
fn a_real_send_refuses_without_the_secret_and_a_dry_run_says_it_uses_a_throwaway() {
    let fixture = Fixture::new(&people(2), UNSUBSCRIBE);
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = send_with_secret(&fixture, &server, None);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("MISSIVE_UNSUBSCRIBE_SECRET is unset"),
        "{}",
        run.all()
    );
    let run = send_with_secret(&fixture, &server, Some("too-short"));
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(run.stderr.contains("at least 32"), "{}", run.all());
    assert!(
        !run.all().contains("too-short"),
        "the secret is never printed: {}",
        run.all()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.connections(), 0, "nothing may be sent");

    let campaign = fixture.campaign();
    let url = server.url();
    let run = fixture.run(
        &[
            "send",
            campaign.to_str().unwrap(),
            "--dry-run",
            "--smtp",
            &url,
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("using a throwaway value"),
        "{}",
        run.all()
    );
    let received = server.wait_for(2, Duration::from_secs(10));
    assert_eq!(received.len(), 2);
    let raw = String::from_utf8(received[0].data.clone()).unwrap();
    let link = https_link(&header(&raw, "List-Unsubscribe"));
    assert_eq!(
        verify(&link, SECRET).code,
        1,
        "a throwaway token never verifies"
    );
}

#[test]
fn suppressed_people_are_never_mailed_and_are_counted() {
    let extra = "[suppression]\nunsubscribed = \"suppression/unsubscribed.txt\"\n\
                 bounced = [\"suppression/bounced.csv\"]\ncomplained = \"suppression/complained.txt\"\n";
    let fixture = Fixture::new(&people(6), extra);
    // Addresses match without case, as the list's duplicates do: Person05 is person05.
    fixture.write(
        "suppression/unsubscribed.txt",
        "# unsubscribed\nperson02@EXAMPLE.com\n",
    );
    fixture.write(
        "suppression/bounced.csv",
        "date,email,reply\n2026-11-01,person04@example.com,550 no such user\n",
    );
    fixture.write(
        "suppression/complained.txt",
        "Person05@example.com\nnot-an-address\n",
    );

    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("3 recipient(s) ready, 0 row(s) rejected, 3 suppressed"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains("warning: ") && run.stdout.contains("complained.txt:2"),
        "an unreadable line is reported: {}",
        run.all()
    );

    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("3 sent") && run.stdout.contains("3 suppressed"),
        "{}",
        run.all()
    );
    let received = server.wait_for(3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    let mut to: Vec<String> = server
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            "person01@example.com",
            "person03@example.com",
            "person06@example.com"
        ]
    );
    assert_eq!(received.len(), 3);

    let run = fixture.command("status", &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let counts: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(counts["suppressed"], 3, "{counts}");
    assert_eq!(counts["sent"], 3, "{counts}");
    assert_eq!(counts["pending"], 0, "{counts}");
    assert_eq!(counts["total"], 6, "{counts}");

    // Someone who unsubscribes after their letter went out stays counted as sent.
    fixture.write(
        "suppression/unsubscribed.txt",
        "person02@example.com\nperson06@example.com\n",
    );
    let run = fixture.command("status", &["--json"]);
    let counts: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (counts["sent"].clone(), counts["suppressed"].clone()),
        (3.into(), 3.into()),
        "a sent letter stays sent: {counts}"
    );
}

/// Whoever the list counts as one person (it compares addresses without case), suppression
/// stops as one person: someone who unsubscribed as `marie@…` is not mailed at `Marie@…`.
#[test]
fn suppression_matches_addresses_as_deduplication_does() {
    let csv = "email,first_name,last_name,amount\n\
               Marie@Example.com,Marie,Curie,\n\
               zoe@example.com,Zoé,Durand,\n";
    let fixture = Fixture::new(
        csv,
        "[suppression]\nunsubscribed = \"suppression/unsubscribed.txt\"\n",
    );
    fixture.write("suppression/unsubscribed.txt", "marie@example.com\n");

    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("1 recipient(s) ready, 0 row(s) rejected, 1 suppressed"),
        "{}",
        run.all()
    );

    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    server.wait_for(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    let to: Vec<String> = server
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    assert_eq!(to, ["zoe@example.com"], "{}", run.all());

    let run = fixture.command("status", &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let counts: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (&counts["suppressed"], &counts["sent"], &counts["pending"]),
        (&1.into(), &1.into(), &0.into()),
        "{counts}"
    );
}

#[test]
fn a_missing_suppression_file_stops_everything() {
    let fixture = Fixture::new(
        &people(2),
        "[suppression]\nbounced = \"suppression/nope.csv\"\n",
    );
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("suppression/nope.csv") && run.stderr.contains("bounced"),
        "{}",
        run.all()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.connections(), 0);
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}

/// The "done when": a message of the shipped campaign, received by a real SMTP server,
/// carries a valid DKIM signature over the unsubscribe headers, passes the lints, has a one-click
/// unsubscribe whose token verifies, and nobody suppressed is mailed.
#[test]
fn the_shipped_campaign_signed_and_received() {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "campaign.toml",
        "templates/letter.fr.md",
        "templates/letter.en.md",
        "recipients/donors.csv",
    ] {
        copy(&repo().join(file), &dir.path().join(file));
    }
    let donors = std::fs::read_to_string(repo().join("recipients/donors.csv")).unwrap();
    let addresses: Vec<&str> = donors
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let suppressed = addresses[1];
    std::fs::create_dir_all(dir.path().join("suppression")).unwrap();
    std::fs::write(
        dir.path().join("suppression/unsubscribed.txt"),
        format!("{suppressed}\n"),
    )
    .unwrap();
    let key = dkim::generate(dir.path(), "ed25519");
    let campaign = dir.path().join("campaign.toml");
    let mut toml = std::fs::read_to_string(&campaign).unwrap();
    toml.push_str(&format!(
        "\n[dkim]\ndomain = \"example.org\"\nselector = \"missive2026\"\nkey = '{}'\n",
        key.pem.display()
    ));
    std::fs::write(&campaign, toml).unwrap();
    let fixture = Fixture { dir };
    let secret = [(SECRET_VAR, SECRET)];

    let check = fixture.run(&["check", campaign.to_str().unwrap()], &secret);
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(
        check.stdout.contains(&format!(
            "{} recipient(s) ready, 0 row(s) rejected, 1 suppressed",
            addresses.len() - 1
        )) && check.stdout.contains("0 lint error(s), 0 warning(s)"),
        "{}",
        check.all()
    );

    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let url = server.url();
    let run = fixture.run(
        &["send", campaign.to_str().unwrap(), "--smtp", &url],
        &secret,
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let received = server.wait_for(addresses.len() - 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), addresses.len() - 1);
    assert!(
        received.iter().all(|m| m.rcpt_to != [suppressed]),
        "{suppressed} is suppressed and must not be mailed"
    );

    let zoe = received
        .iter()
        .find(|m| m.rcpt_to == [addresses[0]])
        .expect("the first donor's message");
    let verdict = dkim::verify(&zoe.data, "missive2026", "example.org", &key.record);
    assert!(verdict.passed, "{}", verdict.report);
    assert!(
        verdict.signed.ends_with(&[
            "list-unsubscribe".to_owned(),
            "list-unsubscribe-post".to_owned()
        ]),
        "{}",
        verdict.report
    );
    let raw = String::from_utf8(zoe.data.clone()).unwrap();
    assert_eq!(
        header(&raw, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    let link = https_link(&header(&raw, "List-Unsubscribe"));
    // The shipped campaign has [letters]: its links name the reader's language, for the pages.
    assert!(
        link.starts_with("https://dons.example.org/desabonnement?lang=fr&c=fails-2023-fr&e="),
        "{link}"
    );
    let (text, _) = text_and_html(&zoe.data);
    assert!(text.contains(&link), "{text}");
    let verified = verify(&link, SECRET);
    assert_eq!(verified.code, 0, "{}", verified.all());
    assert!(verified.stdout.contains(addresses[0]), "{}", verified.all());

    let status = fixture.run(&["status", campaign.to_str().unwrap(), "--json"], &[]);
    let counts: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(counts["suppressed"], 1, "{counts}");
    assert_eq!(counts["sent"], addresses.len() as u64 - 1, "{counts}");
}

#[test]
fn check_lints_links_and_fails_only_on_errors() {
    use crate::support::harness::LETTER;
    let letter = LETTER
        .replace(
            "[lien](https://www.example.org/a)",
            "[lien](http://www.example.org/a), [court](https://bit.ly/3xyz) et \
             [suivi](https://www.example.org/b?utm_source=lettre&fbclid=abc)",
        )
        .replace(
            "[Je fais un don](https://dons.example.org/essai)",
            "[Je fais un don](https://dons.example.org/essai?utm_campaign=fin)",
        );
    let long_subject = format!("subject = \"{}\"\n", "Un sujet bien trop long ".repeat(4));
    let fixture = Fixture::with_letter(&letter, &people(2), "");
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    for expected in [
        "error: ", // every finding says what it is…
        "letter.md:5: http://www.example.org/a is not https",
        "letter.md:5: https://bit.ly/3xyz: bit.ly is a link shortener",
        "letter.md:5: https://www.example.org/b?utm_source=lettre&fbclid=abc: tracking parameter `utm_source`",
        "tracking parameter `fbclid`",
        "letter.md:21: https://dons.example.org/essai?utm_campaign=fin: tracking parameter `utm_campaign`",
        "  fix: ", // …and how to fix it
        "warning: ",
        "no [unsubscribe] section",
        "5 lint error(s), 2 warning(s)",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing {expected:?}\n{}",
            run.all()
        );
    }
    // `send` does not refuse on lints (check is where a campaign is judged), but names them.
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(server.wait_for(2, Duration::from_secs(10)).len(), 2);
    for expected in [
        "letter.md:5: http://www.example.org/a is not https",
        "a lint error: `missive check` would refuse this campaign; sending anyway",
        "bit.ly is a link shortener",
    ] {
        assert!(
            run.stderr.contains(expected),
            "missing {expected:?}\n{}",
            run.all()
        );
    }

    // The campaign may allow utm_*: only the other trackers, http and the shortener remain.
    let fixture = Fixture::with_letter(
        &letter,
        &people(2),
        &format!("{UNSUBSCRIBE}[lints]\nallow_utm = true\n"),
    );
    let run = fixture.run(
        &["check", fixture.campaign().to_str().unwrap()],
        &[(SECRET_VAR, SECRET)],
    );
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(!run.stdout.contains("`utm_"), "{}", run.all());
    assert!(
        run.stdout.contains("3 lint error(s), 1 warning(s)"),
        "{}",
        run.all()
    );

    // Warnings alone (a long subject, no DKIM) do not fail check.
    let text = std::fs::read_to_string(fixture.campaign()).unwrap();
    let text = text.replace("subject = \"Nos ratés de l’année\"\n", &long_subject);
    let clean = Fixture::new(&people(2), UNSUBSCRIBE);
    std::fs::write(
        clean.campaign(),
        text.replace("[lints]\nallow_utm = true\n", ""),
    )
    .unwrap();
    let run = clean.run(
        &["check", clean.campaign().to_str().unwrap()],
        &[(SECRET_VAR, SECRET)],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("characters; inboxes cut it near 80"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains("0 lint error(s), 2 warning(s)"),
        "{}",
        run.all()
    );
}

#[test]
fn verify_refuses_a_link_with_a_second_address() {
    let secret = missive::unsubscribe::Secret::new(SECRET).unwrap();
    let token = missive::unsubscribe::token(&secret, "essai-2026", "zoe@example.com");
    let link = format!(
        "https://dons.example.org/desabonnement?c=essai-2026&e=zoe%40example.com&t={token}"
    );
    let run = verify(&link, SECRET);
    assert_eq!(run.code, 0, "{}", run.all());
    // An endpoint whose framework keeps the last `e` would unsubscribe eve with zoe's token.
    let run = verify(&format!("{link}&e=eve%40example.com"), SECRET);
    assert_eq!(run.code, 1, "{}", run.all());
    assert_eq!(
        run.stderr,
        "invalid: the link has more than one `e` parameter: it was altered\n",
        "{}",
        run.all()
    );
    assert!(run.stdout.is_empty(), "{}", run.all());
}
