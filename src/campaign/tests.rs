//! `Campaign::parse` against files as people write them, and the messages their mistakes get: one
//! test a rule of the file, which is why it runs past 400 lines.

use super::*;

const MINIMAL: &str = r#"
id = "t1"
subject = "Bonjour"
from = "Équipe <dons@example.org>"
language = "fr"
preheader = "p"
letter = "templates/letter.md"
recipients = "recipients/list.csv"
"#;

#[test]
fn minimal_campaign_gets_defaults_and_resolves_paths() {
    let c = Campaign::parse(Path::new("/srv/c/campaign.toml"), MINIMAL).unwrap();
    assert_eq!(c.letter_path, Path::new("/srv/c/templates/letter.md"));
    assert_eq!(c.smtp.endpoint.to_string(), "smtp://127.0.0.1:1025");
    assert_eq!(c.default_log_path(), Path::new("/srv/c/t1.sendlog.jsonl"));
    assert_eq!(c.from.email.to_string(), "dons@example.org");
}

#[test]
fn send_window_instants_are_read_and_one_alone_is_enough() {
    let c = Campaign::parse(Path::new("c.toml"), MINIMAL).unwrap();
    assert_eq!((c.send_after, c.send_before), (None, None));
    let text = format!(
        "{MINIMAL}send_after = \"2026-12-01T09:00:00Z\"\nsend_before = \"2026-12-31T18:00:00+01:00\"\n"
    );
    let c = Campaign::parse(Path::new("c.toml"), &text).unwrap();
    let at = |text| humantime::parse_rfc3339_weak(text).unwrap();
    assert_eq!(c.send_after, Some(at("2026-12-01T09:00:00Z")));
    assert_eq!(c.send_before, Some(at("2026-12-31T17:00:00Z")));
    let text = format!("{MINIMAL}send_before = \"2026-12-31T18:00:00-05:30\"\n");
    let c = Campaign::parse(Path::new("c.toml"), &text).unwrap();
    assert_eq!(c.send_before, Some(at("2026-12-31T23:30:00Z")));
    for wrong in [
        "2026-12-31T18:00:00+25:00",
        "2026-12-31T18:00:00+1:000",
        "31/12 ééé",
    ] {
        let text = format!("{MINIMAL}send_before = \"{wrong}\"\n");
        let error = Campaign::parse(Path::new("c.toml"), &text).unwrap_err();
        assert!(error.to_string().contains("is not a time"), "{error}");
    }
}

#[test]
fn send_window_instants_may_be_toml_date_times_and_must_name_their_zone() {
    let at = |text| humantime::parse_rfc3339_weak(text).unwrap();
    // TOML's own date-times, unquoted, are RFC 3339 as well: read as the quoted ones are.
    let text = format!(
        "{MINIMAL}send_after = 2026-12-01T09:00:00Z\nsend_before = 2026-12-31T18:00:00+01:00\n"
    );
    let c = Campaign::parse(Path::new("c.toml"), &text).unwrap();
    assert_eq!(c.send_after, Some(at("2026-12-01T09:00:00Z")));
    assert_eq!(c.send_before, Some(at("2026-12-31T17:00:00Z")));
    // Without Z or an offset, the hour means nothing: read as UTC, a Paris campaign would open
    // an hour early. Refused, quoted or not, and so is a day alone.
    for wrong in [
        "\"2026-12-01T09:00:00\"",
        "\"2026-12-01 09:00:00\"",
        "2026-12-01T09:00:00",
        "2026-12-01",
        "09:00:00",
    ] {
        let text = format!("{MINIMAL}send_after = {wrong}\n");
        let error = Campaign::parse(Path::new("c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("c.toml:9: field `send_after`") && error.contains("time zone"),
            "{wrong}: {error}"
        );
    }
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = format!("{MINIMAL}colour = \"blue\"\n");
    let err = Campaign::parse(Path::new("c.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.toml"), "{err}");
    assert!(err.contains("colour"), "{err}");
    assert!(err.contains("line 9"), "{err}");
}

#[test]
fn header_fields_refuse_newlines() {
    let text = MINIMAL.replace("\"Bonjour\"", "\"Bonjour\\r\\nBcc: x@example.com\"");
    let err = Campaign::parse(Path::new("c.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("subject"), "{err}");
}

#[test]
fn subject_and_preheader_have_a_limit_named_with_their_line() {
    let at_limit = MINIMAL.replace("\"Bonjour\"", &format!("\"{}\"", "é".repeat(255)));
    assert!(Campaign::parse(Path::new("c.toml"), &at_limit).is_ok());
    let long = MINIMAL.replace("\"Bonjour\"", &format!("\"{}\"", "é".repeat(256)));
    let err = Campaign::parse(Path::new("c.toml"), &long)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("c.toml:3: field `subject`: 256 characters; at most 255"),
        "{err}"
    );
    let long = MINIMAL.replace("\"p\"", &format!("\"{}\"", "p".repeat(300)));
    let err = Campaign::parse(Path::new("c.toml"), &long)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("c.toml:6: field `preheader`: 300 characters"),
        "{err}"
    );
    let long_id = MINIMAL.replace("\"t1\"", &format!("\"{}\"", "i".repeat(65)));
    let err = Campaign::parse(Path::new("c.toml"), &long_id)
        .unwrap_err()
        .to_string();
    assert!(err.contains("field `id`"), "{err}");
}

/// Every refused value is named by its key and its line, with the same words as when the
/// checks were written out by hand.
#[test]
fn a_refused_value_is_named_with_its_field_and_line() {
    let replaced = |from: &str, to: &str| MINIMAL.replace(from, to);
    let appended = |extra: &str| format!("{MINIMAL}{extra}");
    for (text, expected) in [
        (
            replaced("\"t1\"", "\"t 1\""),
            "c.toml:2: field `id`: \"t 1\" must be 1 to 64",
        ),
        (
            replaced("\"Bonjour\"", "\" \""),
            "c.toml:3: field `subject`: must not be empty",
        ),
        (
            replaced("\"Bonjour\"", "\"a\\nb\""),
            "c.toml:3: field `subject`: must be one line",
        ),
        (
            replaced("\"p\"", "\"a\\rb\""),
            "c.toml:6: field `preheader`: must be one line",
        ),
        (
            replaced("\"Équipe <dons@example.org>\"", "\"dons\""),
            "c.toml:4: field `from`: \"dons\" is not a mailbox",
        ),
        (
            appended("reply_to = \"x@\"\n"),
            "c.toml:9: field `reply_to`: \"x@\" is not a mailbox",
        ),
        (
            replaced("\"fr\"", "\"fr_FR\""),
            "c.toml:5: field `language`: \"fr_FR\" is not a language tag",
        ),
        (
            appended("send_after = \"demain\"\n"),
            "c.toml:9: field `send_after`: \"demain\" is not a time",
        ),
        (
            appended("send_before = \"demain\"\n"),
            "c.toml:9: field `send_before`: \"demain\" is not a time",
        ),
        (
            appended(
                "send_after = \"2026-12-01T09:00:00Z\"\nsend_before = \"2026-12-01T09:00:00Z\"\n",
            ),
            "c.toml:10: field `send_before`: must come after send_after (2026-12-01T09:00:00Z)",
        ),
        (
            appended("[smtp]\nurl = \"smtp://mail.example.org\"\n"),
            "c.toml:10: field `smtp.url`: smtp://mail.example.org:25: plain smtp:// is allowed only to a loopback",
        ),
        (
            appended("[smtp]\nrate = 0\n"),
            "c.toml:10: field `smtp.rate`: 0 must be a positive number",
        ),
        (
            appended("[smtp]\npool_size = 65\n"),
            "c.toml:10: field `smtp.pool_size`: 65 must be between 1 and 64",
        ),
        (
            appended("[smtp]\ntimeout_secs = 0\n"),
            "c.toml:10: field `smtp.timeout_secs`: must be at least 1",
        ),
        (
            appended("[smtp]\nburst = 0\n"),
            "c.toml:10: field `smtp.burst`: must be at least 1",
        ),
        (
            appended("[smtp]\nrate = 1\n\nper_day = 0\n"),
            "c.toml:12: field `smtp.per_day`: must be at least 1",
        ),
        (
            appended("smtp.max_connect_failures = 0\n"),
            "c.toml:9: field `smtp.max_connect_failures`: must be at least 1",
        ),
        (
            appended("[dry_run]\nsmtp = \"smtps://\"\n"),
            "c.toml:10: field `dry_run.smtp`: \"smtps://\" is not a URL",
        ),
        (
            appended("[fallback]\nurl = \"http://x\"\n"),
            "c.toml:10: field `fallback.url`: scheme \"http\" is not one of",
        ),
        (
            appended("[fallback]\nurl = \"smtps://x\"\nretry_primary_after = \"0s\"\n"),
            "c.toml:11: field `fallback.retry_primary_after`: \"0s\" is not a duration",
        ),
        (
            appended("[retry]\nmax_attempts = 0\n"),
            "c.toml:10: field `retry.max_attempts`: must be at least 1",
        ),
        (
            appended("[retry]\nmax_delay = \"1m\"\nfirst_delay = \"2m\"\n"),
            "c.toml:10: field `retry.max_delay`: must not be shorter than retry.first_delay",
        ),
        (
            appended("[retry]\nfirst_delay = \"5h\"\n"),
            "c.toml:10: field `retry.first_delay`: must not be longer than retry.max_delay (4h)",
        ),
        (
            appended("[unsubscribe]\nmailto = \"stop\"\nurl = \"https://example.org/\"\n"),
            "c.toml:10: field `unsubscribe.mailto`: \"stop\" is not an address",
        ),
        (
            appended(
                "[unsubscribe]\nmailto = \"a@example.org\"\nurl = \"https://example.org/#x\"\n",
            ),
            "c.toml:11: field `unsubscribe.url`: \"https://example.org/#x\" is not an https:// address",
        ),
        (
            appended(
                "[unsubscribe]\nmailto = \"a@example.org\"\nurl = \"https://example.org/\"\nlink_text = \" \"\n",
            ),
            "c.toml:12: field `unsubscribe.link_text`: must be one non-empty line",
        ),
        (
            appended("[dkim]\ndomain = \"example\"\nselector = \"s\"\nkey = \"k.pem\"\n"),
            "c.toml:10: field `dkim.domain`: \"example\" is not a domain",
        ),
        (
            appended("[dkim]\ndomain = \"example.org\"\nselector = \"s 1\"\nkey = \"k.pem\"\n"),
            "c.toml:11: field `dkim.selector`: \"s 1\" is not a selector",
        ),
        (
            appended(&format!(
                "[dkim]\ndomain = \"{}.example.org\"\n\nselector = \"{}\"\nkey = \"k.pem\"\n",
                vec!["a".repeat(60); 3].join("."),
                "s".repeat(50)
            )),
            "c.toml:12: field `dkim.selector`: \"sssss",
        ),
        // A value of the wrong type, inline or in a table of its own.
        (
            appended("smtp = { pool_size = \"four\" }\n"),
            "c.toml:9: field `smtp.pool_size`: invalid type: string \"four\"",
        ),
        (
            appended("[suppression]\nbounced = 3\n"),
            "c.toml:10: field `suppression.bounced`: data did not match",
        ),
    ] {
        let err = Campaign::parse(Path::new("c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(expected), "{expected}\n{err}");
    }
}

#[test]
fn an_unknown_or_missing_key_is_told_as_the_parser_tells_it() {
    let text = format!("{MINIMAL}[fallback]\nusername = \"u\"\n");
    let err = Campaign::parse(Path::new("c.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("c.toml: TOML parse error at line 9")
            && err.contains("missing field `url`"),
        "{err}"
    );
    let text = MINIMAL.replace("id = \"t1\"\n", "");
    let err = Campaign::parse(Path::new("c.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing field `id`"), "{err}");
}

#[test]
fn a_password_in_a_url_is_refused_with_its_line_and_never_quoted() {
    for url in [
        "smtps://bob:hunter2@mail.example.org",
        "smtp://bob:hunter2@127.0.0.1:25",
    ] {
        for (section, field) in [
            ("[smtp]\nurl", "smtp.url"),
            ("[dry_run]\nsmtp", "dry_run.smtp"),
            ("[fallback]\nurl", "fallback.url"),
            ("smtp = { url", "smtp.url"),
        ] {
            let close = if section.starts_with("smtp =") {
                " }"
            } else {
                ""
            };
            let text = format!("{MINIMAL}{section} = \"{url}\"{close}\n");
            let err = Campaign::parse(Path::new("c.toml"), &text)
                .unwrap_err()
                .to_string();
            let line = if close.is_empty() { 10 } else { 9 };
            assert!(
                err.starts_with(&format!("c.toml:{line}: field `{field}`: ")),
                "{err}"
            );
            assert!(err.contains("MISSIVE_SMTP_PASSWORD"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}

#[test]
fn retry_settings() {
    let text = format!("{MINIMAL}[retry]\nmax_attempts = 3\nfirst_delay = \"1m\"\n");
    let c = Campaign::parse(Path::new("c.toml"), &text).unwrap();
    assert_eq!(
        (c.retry.max_attempts, c.retry.first_delay.as_secs()),
        (3, 60)
    );
    let text = format!("{MINIMAL}[retry]\ngive_up_after = \"soon\"\n");
    let err = Campaign::parse(Path::new("c.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("retry.give_up_after"), "{err}");
}

#[test]
fn deliverability_sections() {
    let text = format!(
        "{MINIMAL}[unsubscribe]\nmailto = \"mailto:stop@example.org\"\nurl = \"https://example.org/stop\"\n\
         [suppression]\nunsubscribed = \"s/unsub.txt\"\nbounced = [\"s/b1.csv\", \"s/b2.txt\"]\n\
         [dkim]\ndomain = \"Example.org\"\nselector = \"s2026\"\nkey = \"keys/dkim.pem\"\n"
    );
    let c = Campaign::parse(Path::new("/srv/c/campaign.toml"), &text).unwrap();
    let u = c.unsubscribe.unwrap();
    assert_eq!(u.mailto.to_string(), "stop@example.org");
    assert_eq!(
        u.footer,
        "Vous ne souhaitez plus recevoir nos lettres\u{202f}?"
    );
    assert_eq!(c.suppression.len(), 3);
    assert_eq!(
        c.suppression[1],
        (Reason::Bounced, PathBuf::from("/srv/c/s/b1.csv"))
    );
    let d = c.dkim.unwrap();
    assert_eq!(
        (d.domain.as_str(), d.key.as_path()),
        ("example.org", Path::new("/srv/c/keys/dkim.pem"))
    );
    assert!(!c.allow_utm);

    let http = format!(
        "{MINIMAL}[unsubscribe]\nmailto = \"a@example.org\"\nurl = \"http://example.org/stop\"\n"
    );
    let err = Campaign::parse(Path::new("c.toml"), &http)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unsubscribe.url") && err.contains("https"),
        "{err}"
    );
    let taken = http.replace(
        "http://example.org/stop",
        "https://example.org/stop?lang=fr&e=x",
    );
    let err = Campaign::parse(Path::new("c.toml"), &taken)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unsubscribe.url") && err.contains("`e` parameter"),
        "{err}"
    );
}

#[test]
fn both_relays_are_described_alike_each_with_its_own_password_variable() {
    let text = format!(
        "{MINIMAL}[smtp]\nurl = \"smtps://mail.example.org\"\nusername = \"u1\"\nca_file = \"ca/one.pem\"\n\
         [fallback]\nurl = \"smtp+starttls://relay.example.net\"\nusername = \"u2\"\nca_file = \"ca/two.pem\"\n\
         retry_primary_after = \"2m\"\n"
    );
    let c = Campaign::parse(Path::new("/srv/c/campaign.toml"), &text).unwrap();
    let fallback = c.fallback.as_ref().unwrap();
    for (relay, url, username, ca, variable, field) in [
        (
            &c.smtp,
            "smtps://mail.example.org:465",
            "u1",
            "/srv/c/ca/one.pem",
            PASSWORD_VAR,
            "smtp.ca_file",
        ),
        (
            fallback,
            "smtp+starttls://relay.example.net:587",
            "u2",
            "/srv/c/ca/two.pem",
            FALLBACK_PASSWORD_VAR,
            "fallback.ca_file",
        ),
    ] {
        assert_eq!(relay.endpoint.to_string(), url);
        assert_eq!(relay.username.as_deref(), Some(username));
        assert_eq!(relay.ca_file.as_deref(), Some(Path::new(ca)));
        assert_eq!(
            (relay.password_var, relay.ca_field()),
            (variable, field.into())
        );
    }
    assert_eq!(c.failover.retry_primary_after.as_secs(), 120);
    assert!(
        Campaign::parse(Path::new("c.toml"), MINIMAL)
            .unwrap()
            .fallback
            .is_none()
    );
}

#[test]
fn new_suppression_entries_go_to_the_first_file_named_or_a_default_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("campaign.toml");
    let text = format!("{MINIMAL}[suppression]\nbounced = [\"s/b1.csv\", \"s/b2.txt\"]\n");
    let c = Campaign::parse(&path, &text).unwrap();
    assert_eq!(
        c.suppression_file(Reason::Bounced),
        dir.path().join("s/b1.csv")
    );
    let default = dir.path().join("suppression/unsubscribed.txt");
    assert_eq!(c.suppression_file(Reason::Unsubscribed), default);
    // The default file is read once it exists, and only then (a campaign that never had one
    // must not fail for lack of it).
    assert!(!c.suppression_sources().iter().any(|(_, p)| *p == default));
    std::fs::create_dir_all(default.parent().unwrap()).unwrap();
    std::fs::write(&default, "a@example.com\n").unwrap();
    assert!(
        c.suppression_sources()
            .contains(&(Reason::Unsubscribed, default))
    );
}

#[test]
fn bounces_section_defaults_and_refusals_name_their_line() {
    let c = Campaign::parse(Path::new("c.toml"), MINIMAL).unwrap();
    assert_eq!(c.bounces, Bounces::default());
    let text =
        format!("{MINIMAL}[bounces]\nreturn_path = \"bounces@example.org\"\nsoft_limit = 5\n");
    let c = Campaign::parse(Path::new("c.toml"), &text).unwrap();
    assert_eq!(
        c.bounces.return_path.unwrap().to_string(),
        "bounces@example.org"
    );
    assert_eq!((c.bounces.soft_limit, c.bounces.soft_days), (5, 30));
    for (bad, expected) in [
        (
            "return_path = \"not an address\"",
            "c.toml:10: field `bounces.return_path`",
        ),
        ("return_path = \"b+x@example.org\"", "already holds a '+'"),
        (
            "soft_days = 0",
            "c.toml:10: field `bounces.soft_days`: must be at least 1",
        ),
    ] {
        let text = format!("{MINIMAL}[bounces]\n{bad}\n");
        let err = Campaign::parse(Path::new("c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn window_is_read_and_a_wrong_one_named_by_line_and_field() {
    let window = |body: &str| format!("{MINIMAL}[window]\n{body}");
    let ok = window(
        "days = [\"mon\", \"fri\"]\nhours = \"09:00-18:00\"\ntime_zone = \"Europe/Paris\"\n",
    );
    let c = Campaign::parse(Path::new("c.toml"), &ok).unwrap();
    assert_eq!(
        c.window.unwrap().to_string(),
        "mon fri 09:00-18:00 Europe/Paris"
    );
    for (body, expected) in [
        (
            "days = [\"lun\"]\nhours = \"09:00-18:00\"\ntime_zone = \"UTC\"\n",
            "c.toml:10: field `window.days`: \"lun\" is not a day",
        ),
        (
            "days = [\"mon\"]\nhours = \"18:00-09:00\"\ntime_zone = \"UTC\"\n",
            "c.toml:11: field `window.hours`: \"18:00-09:00\" ends before it starts",
        ),
        (
            "days = [\"mon\"]\nhours = \"09:00-18:00\"\ntime_zone = \"Paris\"\n",
            "c.toml:12: field `window.time_zone`: \"Paris\" is not a time zone",
        ),
    ] {
        let err = Campaign::parse(Path::new("c.toml"), &window(body))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(expected), "{expected}\n{err}");
    }
}
