//! The command line as people type it, and the options the library gets of it.

use super::*;

fn run(args: &[&str]) -> (Options, LogFormat) {
    match parse(std::iter::once("missive").chain(args.iter().copied())) {
        Parsed::Run(options, format) => (options, format),
        other => panic!("{args:?}: {other:?}"),
    }
}

#[test]
fn help_and_version_are_values_for_standard_output() {
    for (args, kind) in [
        (&["missive", "--help"][..], ErrorKind::DisplayHelp),
        (&["missive", "send", "-h"], ErrorKind::DisplayHelp),
        (&["missive", "--version"], ErrorKind::DisplayVersion),
    ] {
        match parse(args) {
            Parsed::Info(info) => assert_eq!(info.kind(), kind, "{args:?}"),
            other => panic!("{args:?}: {other:?}"),
        }
    }
}

#[test]
fn a_usage_error_is_a_value_with_its_credentials_masked() {
    let Parsed::Usage(message) = parse([
        "missive",
        "send",
        "campaign.toml",
        "--smpt=smtps://user:Pw6-secret@mail.example.org",
    ]) else {
        panic!("a misspelt option is a usage error");
    };
    assert!(message.contains("--smpt"), "{message}");
    assert!(!message.contains("Pw6-secret"), "{message}");
    // `--smtp`'s own parser: the refusal names the option, never the password.
    let Parsed::Usage(message) = parse([
        "missive",
        "check",
        "--smtp",
        "smtp://user:Pw6-secret@127.0.0.1:2525",
    ]) else {
        panic!("a password in --smtp is a usage error");
    };
    assert!(message.contains("--smtp"), "{message}");
    assert!(!message.contains("Pw6-secret"), "{message}");
}

#[test]
fn flags_become_the_library_options() {
    let (options, format) = run(&[
        "send",
        "spring.toml",
        "--smtp",
        "smtp://127.0.0.1:2525",
        "--max-duration",
        "1h30m",
        "--rate",
        "2.5",
        "--in-doubt",
        "skip",
        "--log-format",
        "json",
    ]);
    assert_eq!(format, LogFormat::Json);
    assert_eq!(options.campaign, PathBuf::from("spring.toml"));
    assert_eq!(
        options.smtp.map(|e| e.to_string()).as_deref(),
        Some("smtp://127.0.0.1:2525")
    );
    let Command::Send(send) = options.command else {
        panic!("{:?}", options.command);
    };
    assert_eq!(send.limits.max_duration, Some(Duration::from_secs(5400)));
    assert_eq!(send.limits.rate, Some(2.5));
    assert_eq!(send.in_doubt, InDoubt::Skip);
    assert!(!send.dry_run);
    assert!(send.test.is_none());

    // A test send: the addresses split at commas, whatever comes after them.
    let (options, _) = run(&[
        "send",
        "--test",
        "a@example.org,b@example.org",
        "spring.toml",
    ]);
    assert_eq!(options.campaign, PathBuf::from("spring.toml"));
    let Command::Send(SendOptions {
        test: Some(test), ..
    }) = options.command
    else {
        panic!("{:?}", options.command);
    };
    assert_eq!(test.addresses, ["a@example.org", "b@example.org"]);
    assert_eq!(test.as_email, None);
    let (options, _) = run(&["send", "--test", "a@example.org", "--as", "z@example.com"]);
    let Command::Send(SendOptions {
        test: Some(test), ..
    }) = options.command
    else {
        panic!("{:?}", options.command);
    };
    assert_eq!(test.as_email.as_deref(), Some("z@example.com"));
    // --as alone, or a test that is also a dry run: usage errors.
    for args in [
        &["missive", "send", "--as", "z@example.com"][..],
        &["missive", "send", "--test", "a@example.org", "--dry-run"],
    ] {
        assert!(matches!(parse(args), Parsed::Usage(_)), "{args:?}");
    }

    let (options, _) = run(&["bounces", "spring.toml", "Maildir", "-", "--json"]);
    assert_eq!(options.campaign, PathBuf::from("spring.toml"));
    let Command::Bounces { paths, json } = options.command else {
        panic!("{:?}", options.command);
    };
    assert_eq!(paths, [PathBuf::from("Maildir"), PathBuf::from("-")]);
    assert!(json);

    let (options, format) = run(&["unsubscribe-token", "verify", "t=abc", "--json"]);
    assert_eq!(format, LogFormat::Text);
    assert_eq!(options.campaign, PathBuf::from("campaign.toml"));
    assert!(matches!(
        options.command,
        Command::VerifyUnsubscribe { json: true, .. }
    ));

    let (options, _) = run(&["serve"]);
    let Command::Serve { campaigns, listen } = options.command else {
        panic!("{:?}", options.command);
    };
    assert_eq!(campaigns, [PathBuf::from("campaign.toml")]);
    assert_eq!(listen.to_string(), "127.0.0.1:8025");
    let (options, _) = run(&["serve", "a.toml", "b.toml", "--listen", "[::1]:0"]);
    let Command::Serve { campaigns, listen } = options.command else {
        panic!("{:?}", options.command);
    };
    assert_eq!(campaigns.len(), 2);
    assert_eq!(listen.to_string(), "[::1]:0");
}

#[test]
fn log_import_and_export_name_the_campaign_and_both_ends() {
    let url = "postgres://missive@db.example.org:5432/mail";
    let (options, _) = run(&["log", "import", "spring.toml", "--to", url]);
    assert_eq!(options.campaign, PathBuf::from("spring.toml"));
    match options.command {
        Command::LogImport { from: None, to } => assert_eq!(to, url),
        other => panic!("{other:?}"),
    }
    let (options, _) = run(&["log", "export", "--to", "back.jsonl", "--from", url]);
    assert_eq!(options.campaign, PathBuf::from("campaign.toml"));
    match options.command {
        Command::LogExport { from, to } => {
            assert_eq!(
                (from.as_deref(), to),
                (Some(url), PathBuf::from("back.jsonl"))
            );
        }
        other => panic!("{other:?}"),
    }
}
