//! Drives the real `missive` binary: writes a campaign into a temporary directory, runs a
//! command, and returns what it printed. Each test gets its own directory and its own servers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A small letter using every kind of section and every field syntax.
pub const LETTER: &str = "::: greeting
Bonjour[[ {{first_name}}]],

::: introduction
Voici une lettre d’essai, avec une *italique* et un [lien](https://www.example.org/a).

::: story
## Erreur n°1 : un titre

Le texte de l’histoire.

::: problem
**Ce qui a coincé :** quelque chose.

::: lesson
**Ce que nous avons appris :** autre chose.

::: ask
Un don de {{amount|25}} $ ?

[Je fais un don](https://dons.example.org/essai)

::: signature
Ashley Boyd\\
Mozilla
";

/// A campaign in a temporary directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Fixture {
    /// A campaign with [`LETTER`], the given recipient CSV, and `extra` appended to the TOML.
    pub fn new(csv: &str, extra: &str) -> Fixture {
        Self::with_letter(LETTER, csv, extra)
    }

    pub fn with_letter(letter: &str, csv: &str, extra: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let fixture = Fixture { dir };
        fixture.write("templates/letter.md", letter);
        fixture.write("recipients/list.csv", csv);
        fixture.write(
            "campaign.toml",
            &format!(
                r#"id = "essai-2026"
language = "fr"
subject = "Nos ratés de l’année"
preheader = "Une lettre d’essai"
from = "Mozilla <dons@example.org>"
reply_to = "Réponses <reponses@example.org>"
letter = "templates/letter.md"
recipients = "recipients/list.csv"
{extra}"#
            ),
        );
        fixture
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn campaign(&self) -> PathBuf {
        self.path("campaign.toml")
    }

    /// Runs `missive <args…>` from a directory that is not the campaign's (as cron would), with
    /// no secret in the environment unless `env` gives one.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_missive"));
        command
            .args(args)
            .current_dir(std::env::temp_dir())
            .env_remove("MISSIVE_SMTP_PASSWORD")
            .env_remove("MISSIVE_UNSUBSCRIBE_SECRET")
            .env_remove("MISSIVE_LOG");
        for (key, value) in env {
            command.env(key, value);
        }
        Run::from(command.output().expect("run missive"))
    }

    /// `missive send <campaign> --smtp <url> [more…]`.
    pub fn send(&self, smtp_url: &str, more: &[&str]) -> Run {
        let campaign = self.campaign();
        let mut args = vec!["send", campaign.to_str().unwrap(), "--smtp", smtp_url];
        args.extend_from_slice(more);
        self.run(&args, &[])
    }

    pub fn command(&self, name: &str, more: &[&str]) -> Run {
        let campaign = self.campaign();
        let mut args = vec![name, campaign.to_str().unwrap()];
        args.extend_from_slice(more);
        self.run(&args, &[])
    }

    /// The send log's lines, parsed.
    pub fn log_records(&self) -> Vec<serde_json::Value> {
        let path = self.path("essai-2026.sendlog.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("log line is JSON"))
            .collect()
    }
}

/// A CSV of `n` valid people, `personNN@example.com`.
pub fn people(n: usize) -> String {
    let mut csv = String::from("email,first_name,last_name,amount\n");
    for i in 1..=n {
        csv.push_str(&format!(
            "person{i:02}@example.com,Prénom{i},Nom{i},{}\n",
            10 * i
        ));
    }
    csv
}

/// The repository root (for the shipped campaign).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
