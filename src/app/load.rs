//! Loading a campaign once for any command: the campaign file, its letters prepared in their
//! frames (by [`super::prepare`]), the composer with its attachments, the secret its links and
//! return paths are signed with, its suppression lists, and the fingerprint that tells a changed
//! letter from the one being sent.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;

use super::prepare::prepare;
use super::{Command, Options, SendOptions, Unsendable};
use crate::campaign::{Campaign, CampaignError};
use crate::letter::{Letter, LetterError, Problem};
use crate::message::{Attachment, Composer, PersonalFiles};
use crate::recipients::{RecipientReader, RecipientsError};
use crate::render::Template;
use crate::send::Content;
use crate::suppression::{Skipped, SuppressionList};
use crate::unsubscribe::{SECRET_VAR, Secret, SecretError, Unsubscribe};
use crate::verp::Verp;

/// A campaign with its letter parsed and its recipient file's header checked against it.
pub(super) struct Loaded {
    pub(super) campaign: Campaign,
    /// Every letter, in the order of the campaign's: the default first.
    pub(super) letters: Vec<Letter>,
    /// The letters prepared for rendering in their frames, once for every message.
    pub(super) template: Template,
    pub(super) composer: Composer,
    pub(super) recipients_path: PathBuf,
    /// What is being sent: the letter's source and the headers every message shares.
    pub(super) fingerprint: String,
    /// Read once, shared by every reader of the list.
    pub(super) suppression: Arc<SuppressionList>,
    /// Lines of the suppression files that hold no address.
    pub(super) suppression_skipped: Vec<Skipped>,
    /// Why the unsubscribe secret could not be used, when a throwaway one stands in.
    pub(super) secret_problem: Option<SecretError>,
    /// The key of links and tags, when the campaign has any (a test send signs its own).
    pub(super) secret: Option<Secret>,
    /// The list as opened to check its header, for the command's first reading: opening reads
    /// the whole file to check it is UTF-8, which need not be done twice.
    opened: Mutex<Option<RecipientReader>>,
}

impl Loaded {
    pub(super) fn load(options: &Options) -> anyhow::Result<Loaded> {
        let campaign = Campaign::load(&options.campaign)?;
        // Each in its own language: French spacing only in the French one.
        let letters = campaign
            .letters
            .iter()
            .map(|settings| {
                Letter::load(&settings.letter_path, &settings.language).with_context(|| {
                    format!(
                        "{}: the letter of language {:?}",
                        campaign.path.display(),
                        settings.language
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let recipients_path = options
            .recipients
            .clone()
            .unwrap_or_else(|| campaign.recipients_path.clone());
        let (suppression, suppression_skipped) =
            SuppressionList::load(&campaign.suppression_sources())?;
        let (secret, secret_problem) = secret(&campaign, &options.command)?;
        let unsubscribe = unsubscribe(&campaign, secret.as_ref());
        let (template, mut composer) = prepare(&campaign, &letters, unsubscribe.as_ref());
        // Read here, once: rendering stays free of I/O, and each file is encoded once.
        let attachments = read_attachments(&campaign)?;
        let attached = attachments_digest(&campaign, &attachments);
        composer = composer.with_attachments(attachments);
        if let Some(column) = &campaign.attachment_column {
            composer = composer.with_personal_files(PersonalFiles {
                column: column.name.clone(),
                base: campaign.dir().to_owned(),
            });
        }
        if let (Some(return_path), Some(secret)) = (&campaign.bounces.return_path, &secret) {
            // The campaign file checked that the return path takes a tag.
            let verp = Verp::new(return_path, &campaign.id, secret.clone())
                .with_context(|| format!("{}: [bounces] return_path", campaign.path.display()))?;
            composer = composer.with_verp(Arc::new(verp));
        }
        // `status` and `bounces` compose nothing: they must work even while the key file is
        // being replaced.
        if let Some(settings) = &campaign.dkim
            && !matches!(
                options.command,
                Command::Status { .. }
                    | Command::Bounces { .. }
                    | Command::LogImport { .. }
                    | Command::LogExport { .. }
            )
        {
            composer = composer.with_dkim(Arc::new(crate::dkim::signer(settings)?));
        }
        let fingerprint = fingerprint(&campaign, &letters, &attached);
        let loaded = Loaded {
            campaign,
            letters,
            template,
            composer,
            recipients_path,
            fingerprint,
            suppression: Arc::new(suppression),
            suppression_skipped,
            secret_problem,
            secret,
            opened: Mutex::new(None),
        };
        // Opening reads the header: a missing file or email column fails here, before any work.
        let reader = loaded.recipients()?;
        for letter in &loaded.letters {
            check_fields(letter, reader.columns().names())?;
        }
        if let Some(column) = &loaded.campaign.attachment_column {
            let names = reader.columns().names();
            if !names.contains(&column.name) {
                return Err(CampaignError::InvalidAt {
                    path: loaded.campaign.path.clone(),
                    line: column.line,
                    field: "attachment_column".into(),
                    problem: format!(
                        "{} has no column `{}`: its columns are {}",
                        loaded.recipients_path.display(),
                        column.name,
                        names.join(", ")
                    ),
                }
                .into());
            }
        }
        *loaded.opened.lock().unwrap_or_else(PoisonError::into_inner) = Some(reader);
        Ok(loaded)
    }

    /// A reader of the list from its first row (the one opened when the campaign was loaded,
    /// the first time).
    pub(super) fn recipients(&self) -> Result<RecipientReader, RecipientsError> {
        let opened = self
            .opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match opened {
            Some(reader) => Ok(reader),
            None => RecipientReader::open(&self.recipients_path, &self.campaign.name_columns)
                .map(|reader| reader.with_suppression(Arc::clone(&self.suppression))),
        }
    }

    pub(super) fn content(&self) -> Content<'_> {
        Content {
            template: &self.template,
            composer: &self.composer,
            fingerprint: &self.fingerprint,
        }
    }
}

/// The files attached to every message, read and encoded; one that cannot be read makes the
/// campaign unsendable, named by the line of the campaign file that attaches it. (Public for
/// the bench, which composes as `send` does.)
pub fn read_attachments(campaign: &Campaign) -> Result<Vec<Attachment>, CampaignError> {
    campaign
        .attachments
        .iter()
        .map(|attachment| {
            let bytes = std::fs::read(&attachment.path).map_err(|e| CampaignError::InvalidAt {
                path: campaign.path.clone(),
                line: attachment.line,
                field: "attachments".into(),
                problem: format!(
                    "cannot read {}: {e}: fix the path or put the file there",
                    attachment.path.display()
                ),
            })?;
            let name = attachment
                .path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(Attachment::new(&name, bytes))
        })
        .collect()
}

/// What the fingerprint of the letter adds for the attachments: the shared files as encoded,
/// and the column of each person's own; empty without either.
pub(super) fn attachments_digest(campaign: &Campaign, attachments: &[Attachment]) -> String {
    use sha2::{Digest, Sha256};
    let column = campaign.attachment_column.as_ref().map(|c| c.name.as_str());
    if attachments.is_empty() && column.is_none() {
        return String::new();
    }
    let mut hasher = Sha256::new();
    for attachment in attachments {
        hasher.update(attachment.encoded());
        hasher.update([0]);
    }
    hasher.update(column.unwrap_or("").as_bytes());
    crate::address::hex(&hasher.finalize())
}

/// The sections of the campaign that need the unsubscribe secret: the unsubscribe links, and
/// the VERP return paths, both signed with it.
pub(super) fn secret_users(campaign: &Campaign) -> Vec<&'static str> {
    [
        campaign.unsubscribe.as_ref().map(|_| "[unsubscribe]"),
        campaign
            .bounces
            .return_path
            .as_ref()
            .map(|_| "[bounces] return_path"),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The secret from the environment, when the campaign needs one ([`secret_users`]). Without a
/// usable secret a real send refuses; a dry run, a preview or a check go on with a throwaway one
/// (and say so: `check` reports it as an error), since their links are never followed and
/// their bounces never read.
pub(super) fn secret(
    campaign: &Campaign,
    command: &Command,
) -> anyhow::Result<(Option<Secret>, Option<SecretError>)> {
    let users = secret_users(campaign);
    if users.is_empty() {
        return Ok((None, None));
    }
    match Secret::from_env() {
        Ok(secret) => Ok((Some(secret), None)),
        Err(problem) => {
            match command {
                Command::Send(SendOptions { dry_run: false, .. }) => {
                    return Err(anyhow::Error::new(Unsendable).context(format!(
                        "{}: {} is set but {problem}; refusing to send",
                        campaign.path.display(),
                        users.join(" and ")
                    )));
                }
                // A bounce is believed on its VERP tag alone: without the key none verifies,
                // and reading them by what they report would let a forged one suppress anyone.
                Command::Bounces { .. } if campaign.bounces.return_path.is_some() => {
                    return Err(anyhow::Error::new(Unsendable).context(format!(
                        "{}: [bounces] return_path is set but {problem}; refusing to read \
                         bounces: their tags cannot be verified without it (the messages are \
                         left as they are: run again with the key)",
                        campaign.path.display(),
                    )));
                }
                Command::Send(SendOptions { dry_run: true, .. }) | Command::Preview { .. } => {
                    println!(
                        "note: {SECRET_VAR} is not usable ({}); using a throwaway value: \
                         the unsubscribe links and return paths of these messages will not verify",
                        match problem {
                            SecretError::Missing => "unset".to_owned(),
                            SecretError::TooShort(n) => format!("{n} bytes, too short"),
                        }
                    )
                }
                Command::Check
                | Command::Status { .. }
                | Command::Bounces { .. }
                | Command::LogImport { .. }
                | Command::LogExport { .. }
                | Command::VerifyUnsubscribe { .. }
                | Command::Serve { .. } => {}
            }
            Ok((Some(Secret::throwaway()), Some(problem)))
        }
    }
}

/// The campaign's unsubscribe settings, signed with `secret`.
pub(super) fn unsubscribe(
    campaign: &Campaign,
    secret: Option<&Secret>,
) -> Option<Arc<Unsubscribe>> {
    let (settings, secret) = (campaign.unsubscribe.as_ref()?, secret?);
    Some(Arc::new(Unsubscribe {
        campaign_id: campaign.id.clone(),
        mailto: settings.mailto.clone(),
        url: settings.url.clone(),
        footer: settings.footer.clone(),
        link_text: settings.link_text.clone(),
        secret: secret.clone(),
    }))
}

/// A short hash of everything every message shares: the letter's source, subject, preheader,
/// sender, reply-to, language and unsubscribe footer; with `[letters]`, the same of every
/// letter, and the column that chooses. A new value means a letter changed.
pub(super) fn fingerprint(campaign: &Campaign, letters: &[Letter], attached: &str) -> String {
    let letter = &letters[0];
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let footer = campaign
        .unsubscribe
        .as_ref()
        .map(|u| format!("{}\0{}\0{}\0{}", u.footer, u.link_text, u.mailto, u.url))
        .unwrap_or_default();
    for part in [
        footer.as_str(),
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
    // Only with [letters]: the fingerprints of campaigns of one letter stay what they were.
    if let Some(column) = &campaign.language_column {
        hasher.update(column.as_bytes());
        for (settings, letter) in campaign.letters.iter().zip(letters) {
            for part in [
                &settings.language,
                &letter.source_sha256,
                &settings.subject,
                &settings.preheader,
                &settings.footer,
                &settings.link_text,
            ] {
                hasher.update([0]);
                hasher.update(part.as_bytes());
            }
        }
    }
    // Only with attachments: the fingerprints of campaigns without stay what they were.
    if !attached.is_empty() {
        hasher.update(attached.as_bytes());
    }
    crate::address::hex(&hasher.finalize()[..8])
}

/// Every field the letter mentions must be a column of the recipient file.
pub(super) fn check_fields(letter: &Letter, columns: &[String]) -> Result<(), LetterError> {
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
