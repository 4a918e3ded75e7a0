//! The corpus and the reference of `bench/bounces.sh`: bounces read per second. Not a test.
//!
//! `bench_bounces generate DIR N` writes a campaign into DIR (the shipped letter, a list of N
//! people, `[bounces] return_path`) and a Maildir, `DIR/Maildir/new/`, of N bounces made from
//! the written corpus of `tests/fixtures/bounces/` in turn (DSNs of Postfix, Gmail and a policy
//! refusal, Exim, qmail and old Exchange free text, a complaint, a delay, auto-replies and
//! replies), each about its own person, with its own Message-ID, and VERP tags made with
//! `MISSIVE_UNSUBSCRIBE_SECRET` where the corpus has them.
//!
//! `bench_bounces parse MAILDIR` is the reference: it reads every message of the Maildir and
//! parses it with mail-parser alone (every part walked), and prints `messages=N seconds=S`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use mail_parser::{MessageParser, MimeHeaders};

const CAMPAIGN_ID: &str = "bench-bounces";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["generate", dir, n] => generate(Path::new(dir), n.parse().context("N")?),
        ["parse", maildir] => parse(Path::new(maildir)),
        _ => bail!("usage: bench_bounces generate DIR N | bench_bounces parse MAILDIR"),
    }
}

fn person(i: usize) -> String {
    format!("person{i:06}@example.com")
}

fn generate(dir: &Path, n: usize) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.join("Maildir/new"))?;
    std::fs::create_dir_all(dir.join("Maildir/cur"))?;
    std::fs::create_dir_all(dir.join("Maildir/tmp"))?;
    std::fs::copy(root.join("templates/letter.fr.md"), dir.join("letter.md"))?;
    std::fs::write(
        dir.join("campaign.toml"),
        format!(
            "id = \"{CAMPAIGN_ID}\"\nlanguage = \"fr\"\nsubject = \"Nos ratés\"\n\
             preheader = \"Une lettre\"\nfrom = \"Mozilla <dons@example.org>\"\n\
             letter = \"letter.md\"\nrecipients = \"list.csv\"\n\n\
             [bounces]\nreturn_path = \"bounces@example.org\"\n"
        ),
    )?;
    let mut list = String::from("email,first_name,last_name,amount\n");
    for i in 0..n {
        list.push_str(&format!("{},Prénom{i},Nom{i},{}\n", person(i), 10 + i % 90));
    }
    std::fs::write(dir.join("list.csv"), list)?;

    let secret = missive::unsubscribe::Secret::from_env()
        .context("set MISSIVE_UNSUBSCRIBE_SECRET (any 32 bytes): the corpus has VERP tags")?;
    let return_path: lettre::Address = "bounces@example.org".parse()?;
    let verp = missive::verp::Verp::new(&return_path, CAMPAIGN_ID, secret)?;
    let mut templates = Vec::new();
    for entry in std::fs::read_dir(root.join("tests/fixtures/bounces"))? {
        let path = entry?.path();
        templates.push(std::fs::read_to_string(&path)?);
    }
    templates.sort();
    for i in 0..n {
        let address = person(i);
        let template = &templates[i % templates.len()];
        let returned_id = missive::message::message_id(CAMPAIGN_ID, "example.org", &address);
        let text = replace_people(template, &address)
            .replace(
                "bounces+VERP-TAG@example.org",
                verp.envelope_sender(&address).as_ref(),
            )
            .replacen("Message-ID: <", &format!("Message-ID: <bench-{i}."), 1)
            .replacen("Message-Id: <", &format!("Message-Id: <bench-{i}."), 1);
        let text = replace_returned_ids(&text, returned_id.trim_matches(['<', '>']));
        std::fs::write(dir.join(format!("Maildir/new/1764400000.{i}.bench")), text)?;
    }
    Ok(())
}

/// `template` with every `personNN@example.com` of the corpus made `address`.
fn replace_people(template: &str, address: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find("person") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + "person".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 2 && tail[2..].starts_with("@example.com") {
            out.push_str(address);
            rest = &tail[2 + "@example.com".len()..];
        } else {
            out.push_str("person");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// `text` with the corpus's returned Message-IDs (`essai-2026.<hex>@example.org`) made `id`.
fn replace_returned_ids(text: &str, id: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("essai-2026.") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail.find("@example.org").map(|e| e + "@example.org".len());
        match end {
            Some(end) if end < 80 => {
                out.push_str(id);
                rest = &tail[end..];
            }
            _ => {
                out.push_str("essai-2026.");
                rest = &tail["essai-2026.".len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn parse(maildir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut messages = 0u64;
    let mut parts = 0u64;
    for folder in ["new", "cur"] {
        let mut files: Vec<_> = std::fs::read_dir(maildir.join(folder))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        for file in files {
            let raw = std::fs::read(&file)?;
            if let Some(message) = MessageParser::default().parse(&raw) {
                messages += 1;
                parts += message
                    .parts
                    .iter()
                    .filter(|part| part.content_type().is_some())
                    .count() as u64;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("messages={messages} seconds={seconds:.3} parts={parts}");
    Ok(())
}
