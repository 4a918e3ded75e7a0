//! Messages as a server receives them: headers, identity, and the parts around the letter.

use super::*;

/// Every line of a message's header, its name included, within RFC 5322's 998 octets.
fn assert_header_lines_fit(formatted: &[u8]) {
    let end = formatted
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a blank line ends the header");
    for line in formatted[..end].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(
            line.len() <= MAX_LINE,
            "a header line of {} octets: {}…",
            line.len(),
            String::from_utf8_lossy(&line[..80])
        );
    }
}

#[test]
fn extreme_but_allowed_headers_fold_within_998_octets_and_read_back() {
    use crate::recipients::{RecipientReader, Row};
    use crate::unsubscribe::Secret;

    let max = crate::campaign::MAX_SUBJECT_CHARS;
    let subjects = [
        "x".repeat(max),
        "é".repeat(max),
        "\u{1f4ec}".repeat(max),
        "Bonjour ".repeat(max / 8).trim_end().to_owned(),
        format!("{} {}", "a".repeat(max / 2), "ü".repeat(max / 2)),
        format!("=?utf-8?q?{}", "z".repeat(max - 10)),
    ];
    // Two name columns of up to 1000 characters each: one long word, words, quotes, accents.
    let names = [
        ("n".repeat(1000), "d".repeat(1000)),
        ("Zo\u{e9} ".repeat(250), "\"".repeat(1000)),
        ("a.b-c_".repeat(166), String::new()),
        // lettre folds before a word, with all the spaces in front of it.
        ("x".into(), format!("a{}b", " ".repeat(990))),
        ("Marie Curie".to_owned(), String::new()),
    ];
    // As long as an address may be: 64 octets before the @, 254 in all (RFC 5321).
    let address = format!(
        "{}+x@{}.{}.{}.org",
        "l".repeat(62),
        "d".repeat(63),
        "e".repeat(63),
        "f".repeat(57)
    );
    assert_eq!(address.len(), 254);
    let unsubscribe = Arc::new(Unsubscribe {
        campaign_id: "c".repeat(64),
        mailto: "desabonnement@example.org".parse().unwrap(),
        url: format!("https://dons.example.org/{}", "p".repeat(300))
            .parse()
            .unwrap(),
        footer: "f".into(),
        link_text: "l".into(),
        secret: Secret::new(&"k".repeat(32)).unwrap(),
    });
    let long_from: Mailbox = format!("{} <dons@example.org>", "F".repeat(1000))
        .parse()
        .unwrap();
    // Signed with the longest selector and domain DNS allows (an RSA key's signature is at
    // most 684 characters: `dkim` refuses keys over 4096 bits).
    let dkim = Arc::new(DkimConfig::new(
        "s".repeat(63),
        format!("{}.{}.example.org", "a".repeat(63), "b".repeat(63)),
        lettre::message::dkim::DkimSigningKey::new(
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            lettre::message::dkim::DkimSigningAlgorithm::Ed25519,
        )
        .unwrap(),
        crate::dkim::SIGNED_HEADERS
            .iter()
            .map(|name| HeaderName::new_from_ascii_str(name))
            .collect(),
        lettre::message::dkim::DkimCanonicalization::default(),
    ));
    let date = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    for subject in &subjects {
        for (first, last) in &names {
            let csv = format!(
                "email,first_name,last_name\n{address},\"{}\",\"{}\"\n",
                first.replace('"', "\"\""),
                last.replace('"', "\"\"")
            );
            let mut reader = RecipientReader::from_reader(
                std::path::Path::new("t.csv"),
                Box::new(std::io::Cursor::new(csv.into_bytes())),
                &["first_name".to_owned(), "last_name".to_owned()],
            )
            .unwrap();
            let row = reader.next_row().unwrap();
            let Some(Row::Valid(person)) = row else {
                panic!("{row:?}")
            };
            let composer = Composer::new(
                &unsubscribe.campaign_id,
                long_from.clone(),
                Some(long_from.clone()),
                subject,
            )
            .with_unsubscribe(Arc::clone(&unsubscribe))
            .with_dkim(Arc::clone(&dkim));
            let rendered = Rendered {
                html: "<p>x</p>".into(),
                text: "x".into(),
                letter: 0,
            };
            let formatted = composer
                .compose(&person, rendered, date)
                .unwrap()
                .formatted();
            assert_header_lines_fit(&formatted);

            let parsed = mail_parser::MessageParser::default()
                .parse(&formatted)
                .unwrap();
            assert_eq!(parsed.subject(), Some(subject.as_str()));
            let to = parsed.to().and_then(|to| to.first()).unwrap();
            assert_eq!(to.name(), Some(person.name.as_str()));
            assert_eq!(to.address(), Some(address.as_str()));
            let from = parsed.from().and_then(|from| from.first()).unwrap();
            assert_eq!(from.name(), long_from.name.as_deref());
            let links = parsed.header_raw("List-Unsubscribe").unwrap();
            assert!(links.contains(&unsubscribe.link(&address)), "{links}");
            assert!(parsed.header_raw("DKIM-Signature").is_some());
        }
    }

    // A link that cannot fit on a line: the message is not built, and says why.
    let mut too_long = (*unsubscribe).clone();
    too_long.url = format!("https://dons.example.org/{}", "p".repeat(700))
        .parse()
        .unwrap();
    let composer =
        Composer::new("c", long_from.clone(), None, "S").with_unsubscribe(Arc::new(too_long));
    let csv = format!("email\n{address}\n");
    let mut reader = RecipientReader::from_reader(
        std::path::Path::new("t.csv"),
        Box::new(std::io::Cursor::new(csv.into_bytes())),
        &[],
    )
    .unwrap();
    let Some(Row::Valid(person)) = reader.next_row().unwrap() else {
        panic!("the row is valid")
    };
    let rendered = Rendered {
        html: "<p>x</p>".into(),
        text: "x".into(),
        letter: 0,
    };
    let error = composer.compose(&person, rendered, date).unwrap_err();
    assert!(matches!(error.problem, MessageProblem::LinkTooLong { .. }));
    assert!(error.to_string().contains("[unsubscribe] url"), "{error}");
}

#[test]
fn message_id_is_stable_per_campaign_and_address() {
    let a = message_id("c1", "example.org", "Marie@Example.com");
    assert_eq!(a, message_id("c1", "example.org", "marie@example.com"));
    assert_ne!(a, message_id("c2", "example.org", "marie@example.com"));
    assert_ne!(a, message_id("c1", "example.org", "zoe@example.com"));
    assert!(a.starts_with("<c1.") && a.ends_with("@example.org>"));
    assert_eq!(a.len(), "<c1.@example.org>".len() + 24);
}
