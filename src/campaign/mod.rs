//! The campaign file (`campaign.toml`) and its settings.
//!
//! A campaign names everything a send needs: who writes (sender, reply-to), what (subject,
//! preheader, the letter's path), to whom (the recipients' path), and how (the SMTP server, the
//! pace, the dry-run target). Loading it validates every value once, so the rest of missive works
//! with parsed types (`Mailbox`, [`Endpoint`]) and never with raw strings from the file. This is
//! the configuration layer: it builds the domain modules' own types ([`Endpoint`], [`Limits`],
//! [`RetryPolicy`], [`DkimSettings`], [`Failover`]), and none of those modules knows of it.
//!
//! Relative paths resolve against the campaign file's own directory, so a campaign can be run from
//! anywhere (cron's working directory is rarely the campaign's).
//!
//! `file` is the TOML's shape and `value` its values checked one by one; [`Campaign::parse`]
//! makes the checks that need two values and builds [`Campaign`], with `letters`,
//! `attachments` and `settings` (the settings of its sections); `error` says what went wrong.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lettre::message::Mailbox;

use crate::dkim::DkimSettings;
use crate::ratelimit::Limits;
use crate::retry::RetryPolicy;
use crate::send::Failover;
use crate::smtp::Endpoint;
use crate::suppression::Reason;

mod error;
mod file;
mod settings;
mod value;

pub use error::CampaignError;
pub use settings::{Bounces, RelaySettings, UnsubscribeSettings};

mod attachments;
mod letters;
pub use attachments::{AttachmentColumn, AttachmentPath, inside};
use error::{line_of, toml_error};
pub use letters::{DEFAULT_LANGUAGE_COLUMN, LetterSettings};

use file::CampaignFile;
use settings::{dkim_settings, limits, retry_policy};

/// The longest subject a campaign may have. Inboxes show 40 to 80 characters (`check` warns
/// past 80) and Outlook keeps 255, so a longer one is a paragraph pasted into the wrong field;
/// and it stays a few folded header lines even in 4-byte characters, where a subject without
/// bound once made a header no server would take, on every run.
pub const MAX_SUBJECT_CHARS: usize = 255;
/// The longest preheader: inboxes show about 100 to 140 characters of it, then the letter.
pub const MAX_PREHEADER_CHARS: usize = 255;
/// The longest campaign id: it goes whole into every Message-ID, which cannot be folded.
pub const MAX_ID_CHARS: usize = 64;

/// Environment variable holding the SMTP password; never read from a file, never printed.
pub const PASSWORD_VAR: &str = "MISSIVE_SMTP_PASSWORD";
/// The fallback relay's password.
pub const FALLBACK_PASSWORD_VAR: &str = "MISSIVE_FALLBACK_SMTP_PASSWORD";
/// A loaded, validated campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// The file it came from.
    pub path: PathBuf,
    /// Keys the send log and every Message-ID: changing it makes a new campaign.
    pub id: String,
    /// The default letter's subject, language, preheader and file (see `letters`).
    pub subject: String,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub language: String,
    pub preheader: String,
    pub letter_path: PathBuf,
    /// Every letter, the default first: one, or one per language with `[letters]`.
    pub letters: Vec<LetterSettings>,
    /// With `[letters]`, the recipient column that chooses each person's letter.
    pub language_column: Option<String>,
    pub recipients_path: PathBuf,
    pub name_columns: Vec<String>,
    /// The primary relay (`[smtp]`).
    pub smtp: RelaySettings,
    /// The pace and quotas (`smtp.rate`, `burst`, `per_minute`, `per_hour`, `per_day`).
    pub limits: Limits,
    /// The relay that takes over while the primary is unreachable (`[fallback]`).
    pub fallback: Option<RelaySettings>,
    pub failover: Failover,
    pub send_after: Option<SystemTime>,
    /// Past it, nothing more is sent: a year-end appeal must not arrive on 3 January.
    pub send_before: Option<SystemTime>,
    /// `[window]`: outside it nothing is sent (a run started there exits 75).
    pub window: Option<crate::window::Window>,
    /// `send_log`: a file (resolved against the campaign's folder) or a PostgreSQL URL, used
    /// when `--log` names none.
    pub send_log: Option<String>,
    pub smtp_timeout: Duration,
    pub pool_size: u32,
    pub dry_run_smtp: Endpoint,
    pub outbox: PathBuf,
    pub retry: RetryPolicy,
    /// `None`: messages carry no `List-Unsubscribe` and the letter no unsubscribe footer.
    pub unsubscribe: Option<UnsubscribeSettings>,
    /// Suppression files named in `[suppression]`, in the order they are read; see
    /// [`Campaign::suppression_sources`] for every file to read.
    pub suppression: Vec<(Reason, PathBuf)>,
    pub bounces: Bounces,
    /// `None`: messages are not signed (the relay may sign them).
    pub dkim: Option<DkimSettings>,
    pub allow_utm: bool,
    /// Files attached to every message, each inside the campaign's folder.
    pub attachments: Vec<AttachmentPath>,
    /// The recipient column naming each person's own file.
    pub attachment_column: Option<AttachmentColumn>,
}

impl Campaign {
    /// Reads and validates the campaign file at `path`.
    pub fn load(path: &Path) -> Result<Campaign, CampaignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CampaignError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text` as if read from `path` (which only serves to name errors and resolve
    /// relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Campaign, CampaignError> {
        let file: CampaignFile =
            toml::from_str(text).map_err(|error| toml_error(path, text, error))?;
        // The checks of two values at once; each names the line of the one to change.
        let invalid_at =
            |span: std::ops::Range<usize>, field: &str, problem: String| CampaignError::InvalidAt {
                path: path.to_owned(),
                line: line_of(text, span.start),
                field: field.to_owned(),
                problem,
            };
        let base = path.parent().unwrap_or(Path::new("."));
        let smtp = file.smtp;
        let limits = limits(&smtp);
        let mut failover = Failover {
            max_connect_failures: smtp.max_connect_failures.0,
            ..Failover::default()
        };
        let fallback = file.fallback.map(|section| {
            if let Some(after) = section.retry_primary_after {
                failover.retry_primary_after = after.0;
            }
            RelaySettings::resolve(
                "fallback",
                section.url.0,
                section.username,
                section.ca_file,
                base,
                FALLBACK_PASSWORD_VAR,
            )
        });
        let send_after = file.send_after.map(|time| time.0);
        let send_before = file
            .send_before
            .map(|time| (time.span(), time.into_inner().0));
        if let (Some(after), Some((span, before))) = (send_after, &send_before)
            && *before <= after
        {
            return Err(invalid_at(
                span.clone(),
                "send_before",
                format!(
                    "must come after send_after ({}): nothing could ever be sent",
                    humantime::format_rfc3339_seconds(after)
                ),
            ));
        }
        let retry = retry_policy(file.retry)
            .map_err(|(span, field, problem)| invalid_at(span, field, problem))?;
        let (mut unsubscribe, words) = match file.unsubscribe {
            Some(section) => (
                Some(UnsubscribeSettings {
                    mailto: section.mailto.0,
                    url: section.url.0,
                    footer: String::new(),
                    link_text: String::new(),
                }),
                Some((section.footer, section.link_text)),
            ),
            None => (None, None),
        };
        let (letters, language_column) = letters::letters(
            letters::LettersAsWritten {
                language: file.language.0,
                subject: file.subject,
                preheader: file.preheader,
                letter: file.letter,
                letters: file.letters,
                language_column: file.language_column,
                unsubscribe: words,
            },
            path,
            text,
            base,
        )?;
        let default = letters[0].clone();
        if let Some(settings) = &mut unsubscribe {
            settings.footer = default.footer;
            settings.link_text = default.link_text;
        }
        let dkim = file
            .dkim
            .map(|section| dkim_settings(section, base))
            .transpose()
            .map_err(|(span, problem)| invalid_at(span, "dkim.selector", problem))?;
        let mut suppression = Vec::new();
        for (reason, paths) in [
            (Reason::Unsubscribed, file.suppression.unsubscribed),
            (Reason::Bounced, file.suppression.bounced),
            (Reason::Complained, file.suppression.complained),
        ] {
            suppression.extend(paths.into_vec().into_iter().map(|p| (reason, base.join(p))));
        }

        let attachments = file
            .attachments
            .into_iter()
            .map(|spanned| {
                let span = spanned.span();
                let line = line_of(text, span.start);
                inside(base, spanned.get_ref())
                    .map(|path| AttachmentPath { path, line })
                    .map_err(|problem| invalid_at(span, "attachments", problem))
            })
            .collect::<Result<_, _>>()?;

        Ok(Campaign {
            path: path.to_owned(),
            id: file.id.0,
            subject: default.subject,
            from: file.from.0,
            reply_to: file.reply_to.map(|mailbox| mailbox.0),
            language: default.language,
            preheader: default.preheader,
            letter_path: default.letter_path,
            letters,
            language_column,
            recipients_path: base.join(file.recipients),
            name_columns: file.name_columns,
            smtp: RelaySettings::resolve(
                "smtp",
                smtp.url.0,
                smtp.username,
                smtp.ca_file,
                base,
                PASSWORD_VAR,
            ),
            limits,
            fallback,
            failover,
            send_after,
            send_before: send_before.map(|(_, before)| before),
            window: file.window,
            send_log: file.send_log.map(|log| match log.0 {
                url if crate::sendlog::PgTarget::is_url(&url) => url,
                path => base.join(path).display().to_string(),
            }),
            smtp_timeout: smtp.timeout_secs.0,
            pool_size: smtp.pool_size.0,
            dry_run_smtp: file.dry_run.smtp.0,
            outbox: base.join(file.dry_run.outbox),
            retry,
            unsubscribe,
            suppression,
            bounces: Bounces {
                return_path: file.bounces.return_path.map(|path| path.0),
                soft_limit: file.bounces.soft_limit.0,
                soft_days: file.bounces.soft_days.0,
            },
            dkim,
            allow_utm: file.lints.allow_utm,
            attachments,
            attachment_column: file.attachment_column.map(|column| AttachmentColumn {
                line: line_of(text, column.span().start),
                name: column.into_inner(),
            }),
        })
    }

    /// The folder of the campaign file: where its send log, lock and state live by default.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The file that new entries of `reason` go to (`serve`, `bounces`, and `send` for the
    /// addresses a server refuses for good): the first file named for it in `[suppression]`,
    /// else `suppression/<reason>.txt` beside the campaign file.
    pub fn suppression_file(&self, reason: Reason) -> PathBuf {
        self.suppression
            .iter()
            .find(|(r, _)| *r == reason)
            .map(|(_, path)| path.clone())
            .unwrap_or_else(|| self.default_suppression_file(reason))
    }

    fn default_suppression_file(&self, reason: Reason) -> PathBuf {
        self.dir().join("suppression").join(format!("{reason}.txt"))
    }

    /// Every suppression file to read: those named in `[suppression]`, and for a reason with
    /// none named, its default file when it exists (missive writes it there: it must be read).
    pub fn suppression_sources(&self) -> Vec<(Reason, PathBuf)> {
        let mut sources = self.suppression.clone();
        for reason in [Reason::Unsubscribed, Reason::Bounced, Reason::Complained] {
            if !self.suppression.iter().any(|(r, _)| *r == reason) {
                let path = self.default_suppression_file(reason);
                // An unreadable folder is an error when the file is read, not a missing file.
                if path.try_exists().unwrap_or(true) {
                    sources.push((reason, path));
                }
            }
        }
        sources
    }

    /// The send log's default place: beside the campaign file, named after the campaign id.
    pub fn default_log_path(&self) -> PathBuf {
        self.dir().join(format!("{}.sendlog.jsonl", self.id))
    }
}

#[cfg(test)]
mod tests;
