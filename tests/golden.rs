//! Golden files of the shipped letter, in French and in its English translation, rendered for
//! one person: layout changes show up as a diff to review, like code. After a deliberate change,
//! regenerate them with `UPDATE_GOLDEN=1 cargo test --test tests golden::` and read the diff
//! before committing.

use std::path::{Path, PathBuf};

use missive::campaign::Campaign;
use missive::letter::Letter;
use missive::recipients::{Recipient, RecipientReader, Row};
use missive::render::{Frame, Rendered, render};
use missive::unsubscribe::{Secret, Unsubscribe};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The campaign shipped at the root of the repository.
fn shipped() -> Campaign {
    Campaign::load(&root().join("campaign.toml")).expect("shipped campaign loads")
}

/// The person of the one row of `csv`, under its header line.
fn person(campaign: &Campaign, csv: String) -> Recipient {
    let mut reader = RecipientReader::from_reader(
        Path::new("golden.csv"),
        Box::new(std::io::Cursor::new(csv.into_bytes())),
        &campaign.name_columns,
    )
    .unwrap();
    let Some(Row::Valid(recipient)) = reader.next_row().unwrap() else {
        panic!("the golden row is valid")
    };
    recipient
}

/// The campaign's unsubscribe settings under a fixed key, so the footer's link (and its token)
/// is the same on every run.
fn unsubscribe(campaign: &Campaign) -> Unsubscribe {
    let settings = campaign
        .unsubscribe
        .clone()
        .expect("the shipped campaign has [unsubscribe]");
    Unsubscribe {
        campaign_id: campaign.id.clone(),
        mailto: settings.mailto,
        url: settings.url,
        footer: settings.footer,
        link_text: settings.link_text,
        secret: Secret::new("golden-files-key-golden-files-key").unwrap(),
    }
}

fn rendered_for(csv_row: &str) -> Rendered {
    let campaign = shipped();
    let letter =
        Letter::load(&campaign.letter_path, &campaign.language).expect("shipped letter parses");
    let recipient = person(
        &campaign,
        format!("email,first_name,last_name,amount\n{csv_row}\n"),
    );
    let unsubscribe = unsubscribe(&campaign);
    let frame = Frame {
        subject: &campaign.subject,
        preheader: &campaign.preheader,
        language: &campaign.language,
        unsubscribe: Some(&unsubscribe),
    };
    render(&letter, &frame, &recipient)
}

fn compare(actual: &str, golden: PathBuf) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&golden)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", golden.display()));
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .map_or_else(|| "the end".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "{} differs from the rendering, first at {line}; if the change is deliberate, run \
             UPDATE_GOLDEN=1 cargo test --test tests golden:: and review the diff",
            golden.display()
        );
    }
}

#[test]
fn shipped_letter_text_part() {
    let rendered = rendered_for("zoe@example.com,Zoé,Durand,40");
    compare(&rendered.text, root().join("tests/golden/letter.fr.txt"));
}

#[test]
fn shipped_letter_html_part() {
    let rendered = rendered_for("zoe@example.com,Zoé,Durand,40");
    compare(&rendered.html, root().join("tests/golden/letter.fr.html"));
}

/// The shipped English letter (`[letters.en]`) as an English reader gets it: its frame, its
/// footer, and links that name the language.
fn english_for(csv_row: &str) -> Rendered {
    let campaign = shipped();
    let english = campaign
        .letters
        .iter()
        .find(|letter| letter.language == "en")
        .expect("the shipped campaign has [letters.en]");
    let letter = Letter::load(&english.letter_path, &english.language).expect("it parses");
    let recipient = person(
        &campaign,
        format!("email,first_name,last_name,amount,language\n{csv_row}\n"),
    );
    let unsubscribe = unsubscribe(&campaign).in_language("en", &english.footer, &english.link_text);
    let frame = Frame {
        subject: &english.subject,
        preheader: &english.preheader,
        language: &english.language,
        unsubscribe: Some(&unsubscribe),
    };
    render(&letter, &frame, &recipient)
}

#[test]
fn shipped_english_letter_text_and_html_parts() {
    let rendered = english_for("sean.obrien@example.org,Seán,O'Brien,,en");
    compare(&rendered.text, root().join("tests/golden/letter.en.txt"));
    compare(&rendered.html, root().join("tests/golden/letter.en.html"));
}
