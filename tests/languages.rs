//! Letters per language (`[letters.<language>]`): each person gets the letter of their language
//! column, with its subject, `lang`, typography, footer and links, `fr-CA` falling back to `fr`
//! and an empty or unknown value to the default; `check` counts people per letter and warns of
//! fields one letter lacks; the send log's fingerprint covers every letter; the link of an
//! English letter shows `serve`'s pages in English. Judged on the bytes a real SMTP server
//! received, parsed back with an independent MIME parser.

use std::time::Duration;

use crate::support::harness::{Fixture, LETTER, Run, repo};
use crate::support::http::{Serving, request, runtime};
use crate::support::smtp_server::{Behavior, Received, SmtpServer};

const SECRET_VAR: &str = "MISSIVE_UNSUBSCRIBE_SECRET";
const SECRET: &str = crate::support::http::SECRET;
const WAIT: Duration = Duration::from_secs(20);

/// The English letter of the fixture: the same sections and fields as [`LETTER`], with a
/// space before `?` and `:` that French typography would make non-breaking, and English must
/// leave alone.
const ENGLISH: &str = "::: greeting
Hello[[ {{first_name}}]],

::: introduction
Here is a test letter, with an *italic* and a [link](https://www.example.org/a). Ready ?

::: story
## Mistake #1 : a title

The story's text.

::: problem
**What got stuck :** something.

::: lesson
**What we learned :** something else.

::: ask
A gift of ${{amount|25}} ?

[I'll donate](https://dons.example.org/essai)

::: signature
Ashley Boyd\\
Mozilla
";

const CAMPAIGN: &str = r#"id = "langues-2026"
language = "fr"
from = "Mozilla <dons@example.org>"
recipients = "recipients/list.csv"

[letters.fr]
letter = "templates/letter.md"
subject = "Nos ratés de l’année"
preheader = "Une lettre d’essai"

[letters.en]
letter = "templates/letter.en.md"
subject = "Our fails of the year"
preheader = "A test letter"

[unsubscribe]
mailto = "desabonnement@example.org"
url = "https://dons.example.org/desabonnement"
"#;

/// A person of each kind of language value: the language the letter must be in.
const PEOPLE: [(&str, &str, &str); 7] = [
    ("zoe@example.com", "fr", "fr"),
    ("sean@example.org", "en", "en"),
    ("marie@example.net", "fr-CA", "fr"),
    ("tom@example.com", "EN-gb", "en"),
    ("anon@example.org", "", "fr"),
    ("hans@example.net", "de", "fr"),
    ("kenji@example.com", " en ", "en"),
];

fn fixture(english: &str) -> Fixture {
    let mut csv = "email,first_name,amount,language\n".to_owned();
    for (i, (email, language, _)) in PEOPLE.iter().enumerate() {
        csv.push_str(&format!("{email},P{i},{},{language}\n", 10 + i));
    }
    let fixture = Fixture::with_letter(LETTER, &csv, "");
    fixture.write("templates/letter.en.md", english);
    fixture.write("campaign.toml", CAMPAIGN);
    fixture
}

fn send(fixture: &Fixture, server: &SmtpServer, more: &[&str]) -> Run {
    let campaign = fixture.campaign();
    let url = server.url();
    let mut args = vec!["send", campaign.to_str().unwrap(), "--smtp", &url];
    args.extend_from_slice(more);
    fixture.run(&args, &[(SECRET_VAR, SECRET)])
}

struct Parts {
    subject: String,
    list_unsubscribe: String,
    text: String,
    html: String,
}

/// `check` of the campaign with `csv` as its list of people.
fn check_list(fixture: &Fixture, csv: &str) -> Run {
    fixture.write("recipients/other.csv", csv);
    let campaign = fixture.campaign();
    let other = fixture.path("recipients/other.csv");
    fixture.run(
        &[
            "check",
            campaign.to_str().unwrap(),
            "--recipients",
            other.to_str().unwrap(),
        ],
        &[(SECRET_VAR, SECRET)],
    )
}

fn parts(message: &Received) -> Parts {
    let parsed = mail_parser::MessageParser::default()
        .parse(&message.data)
        .expect("a message");
    Parts {
        subject: parsed.subject().unwrap_or_default().to_owned(),
        list_unsubscribe: parsed
            .header_raw("List-Unsubscribe")
            .unwrap_or_default()
            .replace(['\r', '\n'], ""),
        text: parsed.body_text(0).unwrap().into_owned(),
        html: parsed.body_html(0).unwrap().into_owned(),
    }
}

fn message_to<'a>(received: &'a [Received], email: &str) -> &'a Received {
    received
        .iter()
        .find(|m| m.rcpt_to == [email])
        .unwrap_or_else(|| panic!("no message to {email}"))
}

#[test]
fn each_person_gets_the_letter_of_their_language() {
    let fixture = fixture(ENGLISH);
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = send(&fixture, &server, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let received = server.wait_for(PEOPLE.len(), WAIT);
    assert_eq!(received.len(), PEOPLE.len());
    for (email, value, language) in PEOPLE {
        let m = parts(message_to(&received, email));
        // Lines joined (the footer wraps), the no-break spaces kept.
        let flat = m.text.replace("\r\n", " ");
        let context = format!("{email} ({value:?}):\n{}", m.text);
        assert!(
            m.html.contains(&format!("<html lang=\"{language}\"")),
            "{context}"
        );
        assert!(
            m.list_unsubscribe.contains(&format!("?lang={language}&c=")),
            "{}",
            m.list_unsubscribe
        );
        if language == "fr" {
            assert_eq!(m.subject, "Nos ratés de l’année", "{context}");
            assert!(m.text.starts_with("Bonjour P"), "{context}");
            // French spacing: non-breaking before `?` and `:`, in the letter and the footer.
            assert!(m.text.contains("Un don de "), "{context}");
            assert!(m.text.contains("\u{a0}$\u{202f}?"), "{context}");
            assert!(
                flat.contains("Vous ne souhaitez plus recevoir nos lettres\u{202f}? Se désabonner en un clic\u{a0}: https://dons.example.org/desabonnement?lang=fr&c="),
                "{context}"
            );
            assert!(!m.text.contains("Hello") && !m.html.contains("Unsubscribe in one click"));
        } else {
            assert_eq!(m.subject, "Our fails of the year", "{context}");
            assert!(m.text.starts_with("Hello P"), "{context}");
            assert!(m.text.contains("Ready ?") && m.text.contains("What got stuck :"));
            assert!(
                flat.contains("No longer wish to receive our letters? Unsubscribe in one click: https://dons.example.org/desabonnement?lang=en&c="),
                "{context}"
            );
            // No French spacing anywhere in English.
            assert!(
                !m.text.contains(['\u{a0}', '\u{202f}'])
                    && !m.html.contains(['\u{a0}', '\u{202f}'])
                    && !m.html.contains("&nbsp;"),
                "{context}"
            );
            assert!(!m.html.contains("Bonjour") && !m.html.contains("désabonner"));
        }
    }
    // The unknown language was sent the default letter, not rejected.
    let status = fixture.run(
        &["status", fixture.campaign().to_str().unwrap(), "--json"],
        &[],
    );
    let counts: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(counts["sent"], PEOPLE.len() as u64, "{counts}");
    assert_eq!(counts["invalid"], 0, "{counts}");
}

#[test]
fn check_counts_people_per_letter_and_names_a_field_one_letter_lacks() {
    let fixture = fixture(ENGLISH);
    let campaign = fixture.campaign();
    let check = fixture.run(
        &["check", campaign.to_str().unwrap()],
        &[(SECRET_VAR, SECRET)],
    );
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(
        check.stdout.contains(
            "letters by column `language`: fr 4, en 3 (1 with no language and 1 with an unknown \
             one get fr)"
        ),
        "{}",
        check.all()
    );
    assert!(
        check.stdout.contains("list.csv:7: column `language`")
            && check
                .stdout
                .contains("\"de\" names no letter (1 row(s), the first here)"),
        "{}",
        check.all()
    );
    assert!(
        check
            .stdout
            .contains("7 recipient(s) ready, 0 row(s) rejected")
    );
    assert!(!check.stdout.contains("is in the"), "{}", check.all());

    // The English letter forgets the amount: a warning names both letters and the field.
    fixture.write(
        "templates/letter.en.md",
        &ENGLISH.replace("${{amount|25}}", "$25"),
    );
    let check = fixture.run(
        &["check", campaign.to_str().unwrap()],
        &[(SECRET_VAR, SECRET)],
    );
    assert_eq!(check.code, 0, "warnings only: {}", check.all());
    let warning = check
        .stdout
        .lines()
        .find(|line| line.contains("`{{amount}}`"))
        .unwrap_or_else(|| panic!("no warning of the field: {}", check.all()));
    assert!(
        warning.contains("letter.md:")
            && warning.contains("is in the fr letter")
            && warning.contains("not in the en letter")
            && warning.contains("letter.en.md"),
        "{warning}"
    );
}

#[test]
fn the_fingerprint_covers_every_letter() {
    let fixture = fixture(ENGLISH);
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = send(&fixture, &server, &["--max-messages", "2"]);
    assert_eq!(run.code, 75, "{}", run.all());
    // A change to the English letter alone is a change of the campaign's letter.
    fixture.write(
        "templates/letter.en.md",
        &ENGLISH.replace("The story's text.", "Another text."),
    );
    let run = send(&fixture, &server, &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(run.all().contains("the letter changed"), "{}", run.all());
    assert_eq!(server.messages().len(), 2);
    // So is a new subject of the English letter.
    fixture.write("templates/letter.en.md", ENGLISH);
    std::fs::write(
        fixture.campaign(),
        CAMPAIGN.replace("Our fails of the year", "Our year's fails"),
    )
    .unwrap();
    let run = send(&fixture, &server, &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    fixture.write("campaign.toml", CAMPAIGN);
    let run = send(&fixture, &server, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(server.wait_for(PEOPLE.len(), WAIT).len(), PEOPLE.len());
}

#[test]
fn the_link_of_each_letter_opens_serves_pages_in_its_language() {
    let fixture = fixture(ENGLISH);
    fixture.write("suppression/unsubscribed.txt", "");
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = send(&fixture, &server, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let received = server.wait_for(PEOPLE.len(), WAIT);
    let serving = Serving::start(&[&fixture.campaign()]);
    for (email, page_lang, words) in [
        ("sean@example.org", "en", "Unsubscribe me"),
        ("marie@example.net", "fr", "Me désabonner"),
        ("hans@example.net", "fr", "Me désabonner"),
    ] {
        let header = parts(message_to(&received, email)).list_unsubscribe;
        let start = header.find("<https://").unwrap() + 1;
        let link = &header[start..start + header[start..].find('>').unwrap()];
        let target = link.strip_prefix("https://dons.example.org").unwrap();
        let page = runtime().block_on(request(serving.addr, "GET", target, None, vec![]));
        assert_eq!(page.status, 200, "{page:?}");
        assert!(
            page.body.contains(&format!("<html lang=\"{page_lang}\"")) && page.body.contains(words),
            "{email}: {}",
            page.body
        );
    }
}

#[test]
fn the_shipped_english_letter_has_every_section() {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "campaign.toml",
        "templates/letter.fr.md",
        "templates/letter.en.md",
        "suppression/unsubscribed.txt",
    ] {
        let to = dir.path().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(file), to).unwrap();
    }
    let fixture = Fixture { dir };
    fixture.write(
        "recipients/donors.csv",
        "email,first_name,last_name,amount,language\nsean@example.org,Seán,O'Brien,,en\n\
         zoe@example.com,Zoé,Durand,40,fr\n",
    );
    let campaign = fixture.campaign();
    let check = fixture.run(
        &["check", campaign.to_str().unwrap()],
        &[(SECRET_VAR, SECRET)],
    );
    assert_eq!(check.code, 0, "{}", check.all());
    // The translation keeps the French letter's sections, one for one.
    assert!(
        check.stdout.contains("letter.fr.md (fr, 15 sections), ")
            && check.stdout.contains("letter.en.md (en, 15 sections);"),
        "{}",
        check.all()
    );
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = send(&fixture, &server, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let received = server.wait_for(2, WAIT);
    let english = parts(message_to(&received, "sean@example.org"));
    assert_eq!(
        english.subject,
        "Our best fails of 2023 (and what we learned from them)"
    );
    assert!(english.html.contains("<html lang=\"en\""));
    let text = english
        .text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut at = 0;
    // Every section, in order: greeting, introduction, the three stories with what got stuck
    // and what was learned, closing, ask, farewell, signature.
    for words in [
        "Hello Seán,",
        "Guess what? At Mozilla, we make mistakes too.",
        "Mistake #1: Facebook ads and privacy don't mix.",
        "What got stuck: as you know,",
        "What we learned: you can't build a movement",
        "Mistake #2: a storm can bring people together,",
        "What got stuck: this edition of MozFest",
        "What we learned: the worst storms",
        "Mistake #3: a topic that gets too much buzz",
        "What got stuck: the part of our site",
        "What we learned: we were simply not prepared",
        "The goal of our movement?",
        "Would you be willing to donate $25 to Mozilla?",
        "I'll donate: https://dons.example.org/fin-d-annee-2023",
        "As 2023 draws to a close,",
        "Thank you for laughing, learning, and sometimes failing alongside us in 2023.",
        "-- Ashley Boyd Senior Vice President, Global Advocacy Mozilla",
        "No longer wish to receive our letters? Unsubscribe in one click:",
    ] {
        let found = text[at..]
            .find(words)
            .unwrap_or_else(|| panic!("{words:?} missing after byte {at} of:\n{text}"));
        at += found + words.len();
    }
    // The French reader's letter is the French one, as before.
    let french = parts(message_to(&received, "zoe@example.com"));
    assert!(french.text.starts_with("Bonjour Zoé,"), "{}", french.text);
    assert!(french.html.contains("<html lang=\"fr\""));
}

#[test]
fn a_test_send_is_the_letter_of_the_person_rendered() {
    let fixture = fixture(ENGLISH);
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    for (sent, (whose, subject, hello)) in [
        (
            "sean@example.org",
            "[TEST] Our fails of the year",
            "Hello P1,",
        ),
        (
            "marie@example.net",
            "[TEST] Nos ratés de l’année",
            "Bonjour P2,",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let run = send(
            &fixture,
            &server,
            &["--test", "me@example.org", "--as", whose],
        );
        assert_eq!(run.code, 0, "{}", run.all());
        assert!(run.stdout.contains(subject), "{}", run.all());
        let received = server.wait_for(sent + 1, WAIT);
        assert_eq!(received.len(), sent + 1);
        let m = parts(&received[sent]);
        assert_eq!(m.subject, subject);
        assert!(m.text.starts_with(hello), "{}", m.text);
    }
    assert!(
        !fixture.log_path().exists(),
        "a test send writes no send log"
    );
}

#[test]
fn check_warns_of_a_list_without_the_language_column() {
    let fixture = fixture(ENGLISH);
    let check = check_list(
        &fixture,
        "email,first_name,amount\nzoe@example.com,Zoé,10\n",
    );
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(
        check
            .stdout
            .contains("no column `language`: everyone gets the fr letter"),
        "{}",
        check.all()
    );
    assert!(check.stdout.contains("fr 1, en 0 (1 with no language"));
}

#[test]
fn check_prints_a_hostile_language_value_escaped_and_suggests_only_a_section_that_loads() {
    let fixture = fixture(ENGLISH);
    let check = check_list(
        &fixture,
        "email,first_name,amount,language\n\
         a@example.com,A,1,\"fr\r\nX-Injected: yes\"\n\
         b@example.com,B,2,\"\x1b[2J\x1b[31mRED\"\n\
         c@example.com,C,3,fr CA\n\
         d@example.com,D,4,de\n",
    );
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(
        check.stdout.contains("4 with an unknown one get fr"),
        "{}",
        check.all()
    );
    // A terminal shows what the list holds, and runs none of it.
    assert!(
        !check.stdout.contains(['\x1b', '\r']) && !check.stdout.contains("\nX-Injected"),
        "{}",
        check.all()
    );
    // No section the campaign file would refuse is suggested; one it would take is.
    assert!(!check.stdout.contains("[letters.fr CA]"), "{}", check.all());
    assert!(
        check.stdout.contains("add a [letters.de] section"),
        "{}",
        check.all()
    );
}

#[test]
fn check_names_a_few_unknown_language_values_and_counts_the_rest() {
    // `language_column` pointed at a free-text column by mistake: a value a person.
    let fixture = fixture(ENGLISH);
    let mut csv = "email,first_name,amount,language\n".to_owned();
    for i in 0..60 {
        csv.push_str(&format!("p{i}@example.com,P,1,lang{i}\n"));
    }
    let check = check_list(&fixture, &csv);
    assert_eq!(check.code, 0, "{}", check.all());
    let named = check.stdout.matches("names no letter").count();
    assert!(named <= 20, "{named} warnings: {}", check.all());
    assert!(
        check
            .stdout
            .contains("40 more row(s) hold other values no letter matches"),
        "{}",
        check.all()
    );
    assert!(
        check.stdout.contains("60 with an unknown one get fr"),
        "{}",
        check.all()
    );
}

#[test]
fn a_letter_that_cannot_be_read_is_named_with_its_language_and_no_line() {
    let fixture = fixture(ENGLISH);
    std::fs::remove_file(fixture.path("templates/letter.en.md")).unwrap();
    let check = fixture.command("check", &[]);
    assert_eq!(check.code, 65, "{}", check.all());
    assert!(
        check
            .stderr
            .contains("campaign.toml: the letter of language \"en\": ")
            && check
                .stderr
                .contains("letter.en.md: cannot read the letter"),
        "{}",
        check.all()
    );
    assert!(!check.stderr.contains(":0:"), "{}", check.all());
}

/// One letter that does not parse used to hide the other's problems, and the rows': `check`
/// names them all, each by its file and line.
#[test]
fn check_names_every_letters_problems_when_one_does_not_parse() {
    let fixture = fixture("::: greeting\nHello,\n\n::: postscript\nP.S.\n");
    fixture.write(
        "templates/letter.md",
        &LETTER.replace("{{first_name}}", "{{prenom}}"),
    );
    let check = fixture.run(
        &["check", fixture.campaign().to_str().unwrap()],
        &[(SECRET_VAR, SECRET)],
    );
    assert_eq!(check.code, 65, "{}", check.all());
    for expected in [
        "letter.en.md:4: unknown section `postscript`",
        "letter.md:2: unknown field `{{prenom}}`",
    ] {
        assert!(
            check.all().contains(expected),
            "no {expected:?}\n{}",
            check.all()
        );
    }
}
