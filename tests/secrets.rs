//! A password typed where it does not belong (in an SMTP URL on the command line or in the
//! campaign file) is refused, and never printed: not by the argument parser, not by missive's
//! own errors, whatever the shape of the URL.

use crate::support::harness::{Fixture, Run, people};

/// URLs holding a password, and the password as the user typed it.
const SHAPES: &[(&str, &str)] = &[
    (
        "smtp://user:Pw6-plain-loop@127.0.0.1:2525",
        "Pw6-plain-loop",
    ),
    (
        "smtps://user:Pw6-tls-remote@mail.example.org",
        "Pw6-tls-remote",
    ),
    // Percent-encoded: neither the encoded nor the decoded form may show.
    (
        "smtps://user:Pw6%40encoded%21x@mail.example.org:465",
        "Pw6%40encoded%21x",
    ),
    // An `@` inside the password: the URL grammar takes the last one as the host's.
    (
        "smtp+starttls://user:Pw6@at-sign@mail.example.org",
        "Pw6@at-sign",
    ),
    ("smtps://:Pw6-no-user@mail.example.org", "Pw6-no-user"),
    // Not a URL at all (no `//`), but the password is still there.
    (
        "smtp:user:Pw6-no-slashes@mail.example.org",
        "Pw6-no-slashes",
    ),
    ("smtps://user:Pw6-no-host@", "Pw6-no-host"),
    // A space and quotes in the password: one argument to the shell, several words to a reader.
    (
        "smtps://user:Pw6-with spaced'quote\"dq@mail.example.org",
        "Pw6-with spaced'quote\"dq",
    ),
    (
        "smtpx://user:Pw6-bad-scheme@mail.example.org",
        "Pw6-bad-scheme",
    ),
];

/// Every piece of `password` a reader could use: the whole, its percent-decoded form, and the
/// parts around each `@` or escape.
fn pieces(password: &str) -> Vec<String> {
    let decoded = password
        .replace("%40", "@")
        .replace("%21", "!")
        .replace("%3A", ":");
    let mut pieces = vec![password.to_owned(), decoded.clone()];
    for part in decoded.split(['@', '!', ':', ' ', '\'', '"']) {
        if part.len() >= 4 {
            pieces.push(part.to_owned());
        }
    }
    for part in password.split('%') {
        if part.len() >= 5 {
            pieces.push(part.to_owned());
        }
    }
    pieces
}

fn assert_not_shown(run: &Run, password: &str, what: &str) {
    for piece in pieces(password) {
        assert!(
            !run.stdout.contains(&piece) && !run.stderr.contains(&piece),
            "{what}: {piece:?} of the password {password:?} was printed:\n{}",
            run.all()
        );
    }
}

#[test]
fn a_password_in_smtp_is_refused_without_being_printed() {
    let fixture = Fixture::new(&people(2), "");
    let campaign = fixture.campaign();
    let campaign = campaign.to_str().unwrap();
    for (url, password) in SHAPES {
        for args in [
            vec!["send", campaign, "--smtp", url],
            vec!["send", campaign, "--dry-run", "--smtp", url],
            vec!["send", "--dry-run", campaign, &format!("--smtp={url}")],
            vec!["check", campaign, "--smtp", url],
            vec!["status", campaign, "--smtp", url],
        ] {
            let run = fixture.run(&args, &[]);
            let what = format!("{args:?}");
            assert_not_shown(&run, password, &what);
            assert_eq!(run.code, 1, "{what}: a usage error\n{}", run.all());
            assert!(
                run.stderr.contains("--smtp"),
                "{what}: names the option\n{}",
                run.all()
            );
            assert!(
                run.stderr.contains("MISSIVE_SMTP_PASSWORD"),
                "{what}: says where the password goes\n{}",
                run.all()
            );
        }
    }
    assert!(fixture.log_records().is_empty(), "nothing was sent");
}

#[test]
fn a_password_typed_where_a_campaign_or_an_option_was_expected_is_not_printed() {
    let fixture = Fixture::new(&people(2), "");
    let campaign = fixture.campaign();
    let campaign = campaign.to_str().unwrap();
    for (url, password) in SHAPES {
        for args in [
            // `--smtp` forgotten: the URL lands where the campaign goes, or is one too many.
            vec!["send", url],
            vec!["send", campaign, url],
            // A typo in the option's name.
            vec!["send", campaign, &format!("--smpt={url}")],
        ] {
            let run = fixture.run(&args, &[]);
            let what = format!("{args:?}");
            assert_not_shown(&run, password, &what);
            assert_ne!(run.code, 0, "{what}\n{}", run.all());
        }
    }
}

#[test]
fn a_password_in_the_campaign_file_is_refused_without_being_printed() {
    for (url, password) in SHAPES {
        // As a TOML basic string: a quote in the password is escaped, as its writer would.
        let url = &url.replace('\\', "\\\\").replace('"', "\\\"");
        for (section, field, variable) in [
            ("[smtp]\nurl", "smtp.url", "MISSIVE_SMTP_PASSWORD"),
            ("[dry_run]\nsmtp", "dry_run.smtp", "MISSIVE_SMTP_PASSWORD"),
            (
                "[fallback]\nurl",
                "fallback.url",
                "MISSIVE_FALLBACK_SMTP_PASSWORD",
            ),
        ] {
            let fixture = Fixture::new(&people(2), &format!("{section} = \"{url}\"\n"));
            for command in ["check", "send"] {
                let run = fixture.command(command, &[]);
                let what = format!("{command} with {field} = {url:?}");
                assert_not_shown(&run, password, &what);
                assert_eq!(run.code, 65, "{what}\n{}", run.all());
                assert!(
                    run.stderr.contains("campaign.toml") && run.stderr.contains(field),
                    "{what}: names the file and the field\n{}",
                    run.all()
                );
                assert!(
                    run.stderr.contains(variable),
                    "{what}: says where the password goes\n{}",
                    run.all()
                );
            }
        }
        // A syntax error on the URL's own line: the parser quotes the line.
        let fixture = Fixture::new(&people(2), &format!("[smtp]\nurl = \"{url}\n"));
        let run = fixture.command("check", &[]);
        assert_not_shown(&run, password, "a TOML syntax error on the url line");
        assert_eq!(run.code, 65, "{}", run.all());
        assert!(run.stderr.contains("line 10"), "{}", run.all());
    }
}
