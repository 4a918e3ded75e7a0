//! The commands: `check`, `preview`, `send` and `status`, each a plain function of [`Options`].
//!
//! This is the edge where errors get their context (`anyhow`) and outcomes become [`Exit`]
//! codes that cron reads: 0 done, 75 run again later, 65 the campaign cannot be sent as it
//! stands, 1 anything else.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};

use crate::campaign::{Campaign, CampaignError, Endpoint};
use crate::capture::file_safe;
use crate::letter::{Letter, LetterError, Problem};
use crate::message::Composer;
use crate::recipients::{RecipientReader, RecipientsError, Row};
use crate::render::{Frame, render};
use crate::send::Content;
use crate::sendlog::{Replay, SendLogError};

mod sending;
mod status;

pub use sending::{FALLBACK_PASSWORD_VAR, PASSWORD_VAR, SendOptions};

/// What to do, with every option resolved.
#[derive(Debug)]
pub struct Options {
    pub campaign: PathBuf,
    pub recipients: Option<PathBuf>,
    pub smtp: Option<Endpoint>,
    pub log: Option<PathBuf>,
    pub command: Command,
}

#[derive(Debug)]
pub enum Command {
    Check,
    Preview {
        out: PathBuf,
        recipient: Option<String>,
    },
    Send(SendOptions),
    Status {
        json: bool,
    },
}

/// The exit codes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Nothing left to do.
    Done = 0,
    /// Any other error.
    Failure = 1,
    /// The campaign cannot be sent as it stands.
    Invalid = 65,
    /// Work is left: run again later.
    TryAgain = 75,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}

/// A campaign setting that makes a real send impossible (a missing secret): exit 65.
#[derive(Debug, thiserror::Error)]
#[error("the campaign cannot be sent as it stands")]
pub struct Unsendable;

/// Maps an error that ended a command to its exit code.
pub fn exit_for_error(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        // Bad input found before anything was sent: the campaign must be fixed first.
        if cause.is::<CampaignError>()
            || cause.is::<LetterError>()
            || cause.is::<RecipientsError>()
            || cause.is::<Unsendable>()
        {
            return Exit::Invalid;
        }
        if let Some(SendLogError::Locked { .. }) = cause.downcast_ref::<SendLogError>() {
            return Exit::TryAgain;
        }
    }
    Exit::Failure
}

/// Runs one command.
pub fn run(options: Options) -> anyhow::Result<Exit> {
    let loaded = Loaded::load(&options)?;
    match &options.command {
        Command::Check => check(&loaded),
        Command::Preview { out, recipient } => preview(&loaded, out, recipient.as_deref()),
        Command::Send(send) => {
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(sending::send(&loaded, &options, send))
        }
        Command::Status { json } => status::status(&loaded, &options, *json),
    }
}

/// A campaign with its letter parsed and its recipient file's header checked against it.
struct Loaded {
    campaign: Campaign,
    letter: Letter,
    composer: Composer,
    recipients_path: PathBuf,
    /// What is being sent: the letter's source and the headers every message shares.
    fingerprint: String,
}

impl Loaded {
    fn load(options: &Options) -> anyhow::Result<Loaded> {
        let campaign = Campaign::load(&options.campaign)?;
        let letter = Letter::load(&campaign.letter_path, &campaign.language)?;
        let recipients_path = options
            .recipients
            .clone()
            .unwrap_or_else(|| campaign.recipients_path.clone());
        let composer = Composer::new(
            &campaign.id,
            campaign.from.clone(),
            campaign.reply_to.clone(),
            &campaign.subject,
        );
        let fingerprint = fingerprint(&campaign, &letter);
        let loaded = Loaded {
            campaign,
            letter,
            composer,
            recipients_path,
            fingerprint,
        };
        // Opening reads the header: a missing file or email column fails here, before any work.
        let reader = loaded.recipients()?;
        check_fields(&loaded.letter, reader.columns().names())?;
        Ok(loaded)
    }

    fn recipients(&self) -> Result<RecipientReader, RecipientsError> {
        RecipientReader::open(&self.recipients_path, &self.campaign.name_columns)
    }

    fn frame(&self) -> Frame<'_> {
        Frame {
            subject: &self.campaign.subject,
            preheader: &self.campaign.preheader,
            language: &self.campaign.language,
        }
    }

    fn content(&self) -> Content<'_> {
        Content {
            letter: &self.letter,
            frame: self.frame(),
            composer: &self.composer,
            fingerprint: &self.fingerprint,
        }
    }
}

/// A short hash of everything every message shares: the letter's source, subject, preheader,
/// sender, reply-to and language. A new value means the letter changed.
fn fingerprint(campaign: &Campaign, letter: &Letter) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in [
        letter.source_sha256.as_str(),
        &campaign.subject,
        &campaign.preheader,
        &campaign.from.to_string(),
        &campaign
            .reply_to
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        &campaign.language,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    crate::letter::hex(&hasher.finalize()[..8])
}

/// Every field the letter mentions must be a column of the recipient file.
fn check_fields(letter: &Letter, columns: &[String]) -> Result<(), LetterError> {
    let problems: Vec<Problem> = letter
        .fields()
        .into_iter()
        .filter(|(name, _)| !columns.iter().any(|c| c == name))
        .map(|(name, line)| Problem {
            line,
            message: format!(
                "unknown field `{{{{{name}}}}}`: the recipient file's columns are {}",
                columns.join(", ")
            ),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LetterError {
            path: letter.path.clone(),
            problems,
        })
    }
}

fn check(loaded: &Loaded) -> anyhow::Result<Exit> {
    let mut reader = loaded.recipients()?;
    let frame = loaded.frame();
    let (mut valid, mut rejected) = (0u64, 0u64);
    while let Some(row) = reader.next_row()? {
        match row {
            Row::Valid(recipient) => {
                let rendered = render(&loaded.letter, &frame, &recipient);
                match loaded
                    .composer
                    .compose(&recipient, rendered, SystemTime::now())
                {
                    Ok(message) => {
                        let _ = message.formatted();
                        valid += 1;
                    }
                    Err(e) => {
                        rejected += 1;
                        println!(
                            "{}:{}: {e}",
                            loaded.recipients_path.display(),
                            recipient.line
                        );
                    }
                }
            }
            Row::Rejected(error) => {
                rejected += 1;
                println!("{}", error.at(&loaded.recipients_path));
            }
        }
    }
    println!(
        "{}: {valid} recipient(s) ready, {rejected} row(s) rejected; letter {} ({} sections)",
        loaded.campaign.path.display(),
        loaded.letter.path.display(),
        loaded.letter.sections.len()
    );
    Ok(if rejected == 0 {
        Exit::Done
    } else {
        Exit::Invalid
    })
}

fn preview(loaded: &Loaded, out: &Path, only: Option<&str>) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let only = only.map(str::to_lowercase);
    let mut reader = loaded.recipients()?;
    let frame = loaded.frame();
    let mut written = 0;
    while let Some(row) = reader.next_row()? {
        let recipient = match row {
            Row::Valid(recipient) => recipient,
            Row::Rejected(error) => {
                eprintln!("skipped: {}", error.at(&loaded.recipients_path));
                continue;
            }
        };
        if only
            .as_ref()
            .is_some_and(|only| recipient.email.to_string().to_lowercase() != *only)
        {
            continue;
        }
        let rendered = render(&loaded.letter, &frame, &recipient);
        let stem = format!(
            "{:05}-{}",
            recipient.line,
            file_safe(recipient.email.as_ref())
        );
        let write = |extension: &str, bytes: &[u8]| {
            // Not `with_extension`: it would eat the address's `.com`.
            let path = out.join(format!("{stem}.{extension}"));
            std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
        };
        write("html", rendered.html.as_bytes())?;
        write("txt", rendered.text.as_bytes())?;
        let message = loaded
            .composer
            .compose(&recipient, rendered, SystemTime::now())?;
        write("eml", &message.formatted())?;
        written += 1;
    }
    if let Some(only) = only
        && written == 0
    {
        bail!(
            "no valid recipient {only} in {}",
            loaded.recipients_path.display()
        );
    }
    println!("wrote {written} message(s) to {}", out.display());
    Ok(Exit::Done)
}

/// True when the log shows attempts, and none of them of this letter.
fn letter_changed(replay: &Replay, fingerprint: &str) -> bool {
    !replay.letters().is_empty() && !replay.letters().contains(fingerprint)
}
