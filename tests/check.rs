//! `check`, `preview` and the errors that stop a campaign before anything is sent: each names
//! the file, the line and the field, and exits with the contract's code.

use std::time::Duration;

use crate::support::harness::{Fixture, LETTER, list_with_line_ends, people, repo};
use crate::support::smtp_server::{Behavior, SmtpServer};

#[test]
fn check_accepts_a_good_campaign() {
    let fixture = Fixture::new(&people(5), "");
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("5 recipient(s) ready, 0 row(s) rejected"),
        "{}",
        run.all()
    );
}

#[test]
fn check_reports_every_bad_row_by_line_and_field() {
    let long = "x".repeat(1001);
    let csv = format!(
        "\u{feff}email,first_name,last_name,amount\n\
         ok@example.com,Ok,,\n\
         ,Vide,,\n\
         pas-une-adresse,Bad,,\n\
         OK@EXAMPLE.COM,Doublon,,\n\
         a@example.com,trop,de,champs,ici\n\
         \"b@example.com\",\"Eve\nBcc: victim@example.org\",,\n\
         c@example.com,{long},,\n\
         d@example.com,Dernière,,\n"
    );
    let fixture = Fixture::new(&csv, "");
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    for expected in [
        "list.csv:3: field `email`: empty address",
        "list.csv:4: field `email`: invalid address",
        "list.csv:5: field `email`: OK@EXAMPLE.COM appears earlier",
        "list.csv:6: 5 fields where the header has 4",
        "list.csv:7: field `first_name`: contains a line break",
        "list.csv:9: field `first_name`: longer than 1000 characters",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing {expected:?}\n{}",
            run.all()
        );
    }
    assert!(
        run.stdout
            .contains("2 recipient(s) ready, 6 row(s) rejected"),
        "{}",
        run.all()
    );
}

/// Spreadsheets write CRLF: `check` and `preview` name the lines an editor shows, as for LF.
#[test]
fn crlf_and_lf_files_report_the_same_lines() {
    for eol in ["\r\n", "\n"] {
        let fixture = Fixture::new(&list_with_line_ends(eol), "");
        let run = fixture.command("check", &[]);
        assert_eq!(run.code, 65, "{}", run.all());
        for expected in [
            "list.csv:3: field `email`: invalid address",
            "list.csv:6: field `email`: empty address",
            "3 recipient(s) ready, 2 row(s) rejected",
        ] {
            assert!(
                run.stdout.contains(expected),
                "{eol:?}: missing {expected:?}\n{}",
                run.all()
            );
        }

        let out = fixture.path("apercu");
        let run = fixture.command("preview", &["--out", out.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.all());
        let mut emls: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".eml"))
            .collect();
        emls.sort();
        assert_eq!(
            emls,
            [
                "00002-ok@example.com.eml",
                "00004-multi@example.com.eml",
                "00007-last@example.com.eml"
            ],
            "{eol:?}"
        );
    }
}

#[test]
fn a_missing_email_column_exits_65_before_anything_is_sent() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new("mail,first_name\na@example.com,A\n", "");
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr
            .contains("list.csv:1: the header row has no `email` column"),
        "{}",
        run.all()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.messages().is_empty());
    assert_eq!(server.connections(), 0);
}

/// A list saved as Latin-1: its ASCII rows would be readable, the others not. `check` refuses
/// the file whole, naming the first bad line and how to convert it (`send` does the same,
/// tests/send.rs).
#[test]
fn a_recipient_file_that_is_not_utf8_is_refused_whole() {
    let fixture = Fixture::new("", "");
    std::fs::write(
        fixture.path("recipients/list.csv"),
        b"email,first_name,last_name,amount\n\
          ascii@example.com,Zoe,Durand,\n\
          francoise@example.com,Fran\xe7oise,L\xe9ger,\n\
          rene@example.com,Rene,,\n",
    )
    .unwrap();
    let expected = [
        "list.csv:3: not UTF-8 (byte 0xE7)",
        "iconv -f latin1 -t utf-8 ",
        "list.utf8.csv",
    ];

    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    for part in expected {
        assert!(run.stderr.contains(part), "missing {part:?}\n{}", run.all());
    }
    // Refused whole: no row is reported one by one.
    assert!(!run.stdout.contains("ready"), "{}", run.all());
}

#[test]
fn an_unreadable_recipient_file_exits_65() {
    let fixture = Fixture::new(&people(1), "");
    std::fs::remove_file(fixture.path("recipients/list.csv")).unwrap();
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(run.stderr.contains("list.csv"), "{}", run.all());
}

#[test]
fn an_unknown_field_in_the_letter_names_its_line() {
    let letter = LETTER.replace("Bonjour[[ {{first_name}}]]", "Bonjour[[ {{frist_name}}]]");
    let fixture = Fixture::with_letter(&letter, &people(1), "");
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr
            .contains("letter.md:2: unknown field `{{frist_name}}`"),
        "{}",
        run.all()
    );
}

#[test]
fn raw_html_and_images_in_the_letter_are_refused() {
    let letter = LETTER.replace(
        "Le texte de l’histoire.",
        "Le texte <img src=\"https://t.example.org/p.gif\">.\n\n![pixel](https://t.example.org/p.gif)",
    );
    let fixture = Fixture::with_letter(&letter, &people(1), "");
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("letter.md:10: raw HTML is not allowed"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("letter.md:12: images are not allowed"),
        "{}",
        run.all()
    );
}

#[test]
fn an_unknown_campaign_key_names_key_and_line() {
    let fixture = Fixture::new(&people(1), "colour = \"bleu\"\n");
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(run.stderr.contains("campaign.toml"), "{}", run.all());
    assert!(run.stderr.contains("line 9"), "{}", run.all());
    assert!(run.stderr.contains("colour"), "{}", run.all());
}

#[test]
fn help_and_version_go_to_standard_output_and_a_usage_error_exits_1() {
    let fixture = Fixture::new(&people(1), "");
    for args in [&["--help"][..], &["send", "--help"], &["--version"]] {
        let run = fixture.run(args, &[]);
        assert_eq!(run.code, 0, "{args:?}\n{}", run.all());
        assert!(
            !run.stdout.is_empty() && run.stderr.is_empty(),
            "{args:?}\n{}",
            run.all()
        );
    }
    let run = fixture.run(&["--version"], &[]);
    assert!(
        run.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        run.all()
    );
    // Not clap's 2: the contract's "any other error".
    let run = fixture.run(&["sned", "campaign.toml"], &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.is_empty() && run.stderr.contains("sned"),
        "{}",
        run.all()
    );
}

#[test]
fn a_real_send_refuses_without_its_password_and_never_prints_it() {
    let extra = "[smtp]\nurl = \"smtp+starttls://mail.example.org:587\"\nusername = \"campagnes@example.org\"\nmax_connect_failures = 1\n";
    let fixture = Fixture::new(&people(1), extra);
    let run = fixture.command("send", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("MISSIVE_SMTP_PASSWORD"),
        "{}",
        run.all()
    );

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let campaign = fixture.campaign();
    let url = format!("smtp://127.0.0.1:{closed}");
    let run = fixture.run(
        &["send", campaign.to_str().unwrap(), "--smtp", &url],
        &[
            ("MISSIVE_SMTP_PASSWORD", "hunter2-very-secret"),
            ("MISSIVE_LOG", "trace"),
        ],
    );
    assert_eq!(run.code, 75, "{}", run.all());
    assert!(!run.all().contains("hunter2"), "{}", run.all());
}

#[test]
fn plain_smtp_is_refused_beyond_loopback() {
    let fixture = Fixture::new(&people(1), "[smtp]\nurl = \"smtp://mail.example.org:25\"\n");
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(run.stderr.contains("smtp.url"), "{}", run.all());
    assert!(run.stderr.contains("loopback"), "{}", run.all());

    let good = Fixture::new(&people(1), "");
    let run = good.command("send", &["--smtp", "smtp://mail.example.org:25"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("loopback"), "{}", run.all());
}

#[test]
fn preview_writes_eml_html_and_text() {
    let fixture = Fixture::new(&people(3), "");
    let out = fixture.path("apercu");
    let run = fixture.command("preview", &["--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.all());
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Three files a message, and the first message as a page to look at.
    assert_eq!(names.len(), 10, "{names:?}");
    assert_eq!(names[0], "00002-person01@example.com.eml");
    assert_eq!(names[9], "screenshot.html");

    let one = fixture.path("un");
    let run = fixture.command(
        "preview",
        &[
            "--out",
            one.to_str().unwrap(),
            "--recipient",
            "PERSON02@example.com",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let text = std::fs::read_to_string(one.join("00003-person02@example.com.txt")).unwrap();
    assert!(text.starts_with("Bonjour Prénom2,\n"), "{text}");
    let html = std::fs::read_to_string(one.join("00003-person02@example.com.html")).unwrap();
    assert!(html.contains("<html lang=\"fr\""));
}

#[test]
fn the_shipped_campaign_checks_clean() {
    let campaign = repo().join("campaign.toml");
    let check = |secret: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_missive"));
        command
            .args(["check", campaign.to_str().unwrap()])
            .current_dir(std::env::temp_dir())
            .env_remove("MISSIVE_UNSUBSCRIBE_SECRET");
        if let Some(secret) = secret {
            command.env("MISSIVE_UNSUBSCRIBE_SECRET", secret);
        }
        let output = command.output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), all)
    };
    let (code, all) = check(Some("a-test-secret-of-at-least-32-bytes!"));
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("0 row(s) rejected"), "{all}");
    assert!(all.contains("0 lint error(s)"), "{all}");
    assert!(!all.contains("a-test-secret"), "{all}");

    // The shipped campaign enables unsubscribe: without its secret it cannot be sent.
    let (code, all) = check(None);
    assert_eq!(code, Some(65), "{all}");
    assert!(
        all.contains("error: ") && all.contains("MISSIVE_UNSUBSCRIBE_SECRET is unset"),
        "{all}"
    );
}

#[test]
fn an_over_long_subject_is_refused_by_check_and_send_naming_its_line() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(2), "");
    let campaign = std::fs::read_to_string(fixture.campaign()).unwrap();
    let subject = "Nos ratés ".repeat(30);
    fixture.write(
        "campaign.toml",
        &campaign.replace("Nos ratés de l’année", &subject),
    );
    for run in [
        fixture.command("check", &[]),
        fixture.send(&server.url(), &[]),
    ] {
        assert_eq!(run.code, 65, "{}", run.all());
        assert!(
            run.stderr
                .contains("campaign.toml:3: field `subject`: 300 characters; at most 255"),
            "{}",
            run.all()
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.messages().is_empty());
    assert_eq!(server.connections(), 0);
    assert!(!fixture.log_path().exists());
}

/// A quote left open on one row used to take every line after it, up to the next quote or the
/// end of the file, into that row: the people on them were never mailed and `send` exited 0.
/// Only the broken line is refused, and named; the lines after it are rows of their own.
#[test]
fn a_quote_left_open_refuses_its_line_and_the_people_after_it_are_mailed() {
    let csv = "email,first_name,last_name,amount\n\
               a@example.com,A,,\n\
               \"b@example.com,B,,\n\
               c@example.com,C,,\n\
               d@example.com,D,,\n";
    let fixture = Fixture::new(csv, "");
    let check = fixture.command("check", &[]);
    assert_eq!(check.code, 65, "{}", check.all());
    assert!(
        check.stdout.contains("list.csv:3: a quote opens a value")
            && check
                .stdout
                .contains("3 recipient(s) ready, 1 row(s) rejected"),
        "{}",
        check.all()
    );
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let mut to: Vec<String> = server
        .wait_for(3, Duration::from_secs(10))
        .iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    to.sort();
    assert_eq!(to, ["a@example.com", "c@example.com", "d@example.com"]);
    let status = fixture.status();
    assert_eq!(
        (&status["sent"], &status["invalid"], &status["total"]),
        (&3.into(), &1.into(), &4.into()),
        "{status}"
    );
}

/// A letter that does not parse used to be the only thing `check` said: the list's bad rows
/// came one fix later. Both are named at once.
#[test]
fn check_names_the_bad_rows_even_when_the_letter_does_not_parse() {
    let letter = format!("{LETTER}\n::: postscript\nP.-S. : rien.\n");
    let csv = "email,first_name,last_name,amount\n\
               a@example.com,A,,\n\
               pas-une-adresse,B,,\n\
               c@example.com,C,,\n\
               A@example.com,D,,\n";
    let fixture = Fixture::with_letter(&letter, csv, "");
    let run = fixture.command("check", &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    for expected in [
        "letter.md:27: unknown section `postscript`",
        "list.csv:3: field `email`: invalid address",
        "list.csv:5: field `email`: A@example.com appears earlier",
    ] {
        assert!(
            run.all().contains(expected),
            "no {expected:?}\n{}",
            run.all()
        );
    }
}
