//! The commands: `check`, `preview`, `send` and `status`, each a plain function of [`Options`].
//!
//! This is the edge where errors get their context (`anyhow`) and outcomes become [`Exit`]
//! codes that cron reads: 0 done, 75 run again later, 65 the campaign cannot be sent as it
//! stands, 1 anything else.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use lettre::transport::smtp::authentication::Credentials;

use crate::campaign::{Campaign, CampaignError, Endpoint};
use crate::capture::{CaptureServer, file_safe};
use crate::dkim::DkimError;
use crate::letter::{Letter, LetterError, Problem};
use crate::lint::{self, Finding, Severity};
use crate::message::Composer;
use crate::recipients::{RecipientReader, RecipientsError, Row};
use crate::render::{Frame, render};
use crate::send::{Content, Engine, RunLimits, RunReport, Stopped};
use crate::sendlog::{FileLog, LogWriter, MemoryLog, Replay, SendLog, SendLogError, Status};
use crate::smtp::Mailer;
use crate::suppression::{Skipped, SuppressionError, SuppressionList};
use crate::unsubscribe::{SECRET_VAR, Secret, SecretError, Unsubscribe};

/// Environment variable holding the SMTP password; never read from a file, never printed.
pub const PASSWORD_VAR: &str = "MISSIVE_SMTP_PASSWORD";

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
    Send {
        dry_run: bool,
        limits: RunLimits,
        /// Go on although the letter changed since sending began.
        allow_changed_letter: bool,
    },
    Status {
        json: bool,
    },
    /// Check an unsubscribe link; needs no campaign.
    VerifyUnsubscribe {
        link: String,
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
            || cause.is::<SuppressionError>()
            || cause.is::<DkimError>()
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
    if let Command::VerifyUnsubscribe { link, json } = &options.command {
        return verify_unsubscribe(link, *json);
    }
    let loaded = Loaded::load(&options)?;
    match &options.command {
        Command::Check => check(&loaded),
        Command::Preview { out, recipient } => preview(&loaded, out, recipient.as_deref()),
        Command::Send {
            dry_run,
            limits,
            allow_changed_letter,
        } => {
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let mode = if *dry_run {
                Mode::DryRun
            } else {
                Mode::Real {
                    allow_changed_letter: *allow_changed_letter,
                }
            };
            runtime.block_on(send(&loaded, &options, mode, limits))
        }
        Command::Status { json } => status(&loaded, &options, *json),
        Command::VerifyUnsubscribe { .. } => unreachable!("answered before loading"),
    }
}

/// `unsubscribe-token verify`: 0 and whom the link unsubscribes, or 1 and why not.
fn verify_unsubscribe(link: &str, json: bool) -> anyhow::Result<Exit> {
    let secret = Secret::from_env().context("cannot verify unsubscribe links")?;
    let outcome = crate::unsubscribe::verify_link(&secret, link);
    if json {
        let value = match &outcome {
            Ok(v) => {
                serde_json::json!({"valid": true, "campaign": v.campaign_id, "address": v.address})
            }
            Err(e) => serde_json::json!({"valid": false, "error": e.to_string()}),
        };
        println!("{value}");
    }
    match outcome {
        Ok(verified) => {
            if !json {
                println!(
                    "valid: unsubscribe {} from campaign {}",
                    verified.address, verified.campaign_id
                );
            }
            Ok(Exit::Done)
        }
        Err(error) => {
            if !json {
                eprintln!("invalid: {error}");
            }
            Ok(Exit::Failure)
        }
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
    /// Read once, shared by every reader of the list.
    suppression: Arc<SuppressionList>,
    /// Lines of the suppression files that hold no address.
    suppression_skipped: Vec<Skipped>,
    unsubscribe: Option<Arc<Unsubscribe>>,
    /// Why the unsubscribe secret could not be used, when a throwaway one stands in.
    secret_problem: Option<SecretError>,
}

impl Loaded {
    fn load(options: &Options) -> anyhow::Result<Loaded> {
        let campaign = Campaign::load(&options.campaign)?;
        let letter = Letter::load(&campaign.letter_path, &campaign.language)?;
        let recipients_path = options
            .recipients
            .clone()
            .unwrap_or_else(|| campaign.recipients_path.clone());
        let (suppression, suppression_skipped) = SuppressionList::load(&campaign.suppression)?;
        let (unsubscribe, secret_problem) = unsubscribe(&campaign, &options.command)?;
        let mut composer = Composer::new(
            &campaign.id,
            campaign.from.clone(),
            campaign.reply_to.clone(),
            &campaign.subject,
        );
        if let Some(unsubscribe) = &unsubscribe {
            composer = composer.with_unsubscribe(Arc::clone(unsubscribe));
        }
        // `status` composes nothing: it must work even while the key file is being replaced.
        if let Some(settings) = &campaign.dkim
            && !matches!(options.command, Command::Status { .. })
        {
            composer = composer.with_dkim(Arc::new(crate::dkim::signer(settings)?));
        }
        let fingerprint = fingerprint(&campaign, &letter);
        let loaded = Loaded {
            campaign,
            letter,
            composer,
            recipients_path,
            fingerprint,
            suppression: Arc::new(suppression),
            suppression_skipped,
            unsubscribe,
            secret_problem,
        };
        // Opening reads the header: a missing file or email column fails here, before any work.
        let reader = loaded.recipients()?;
        check_fields(&loaded.letter, reader.columns().names())?;
        Ok(loaded)
    }

    fn recipients(&self) -> Result<RecipientReader, RecipientsError> {
        RecipientReader::open(&self.recipients_path, &self.campaign.name_columns)
            .map(|reader| reader.with_suppression(Arc::clone(&self.suppression)))
    }

    fn frame(&self) -> Frame<'_> {
        Frame {
            subject: &self.campaign.subject,
            preheader: &self.campaign.preheader,
            language: &self.campaign.language,
            unsubscribe: self.unsubscribe.as_deref(),
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

/// The campaign's unsubscribe settings with the secret from the environment. Without a usable
/// secret a real send refuses; a dry run, a preview or a check go on with a throwaway one (and
/// say so: `check` reports it as an error), since their links are never followed.
fn unsubscribe(
    campaign: &Campaign,
    command: &Command,
) -> anyhow::Result<(Option<Arc<Unsubscribe>>, Option<SecretError>)> {
    let Some(settings) = &campaign.unsubscribe else {
        return Ok((None, None));
    };
    let (secret, problem) = match Secret::from_env() {
        Ok(secret) => (secret, None),
        Err(problem) => {
            match command {
                Command::Send { dry_run: false, .. } => {
                    return Err(anyhow::Error::new(Unsendable).context(format!(
                        "{}: [unsubscribe] is set but {problem}; refusing to send",
                        campaign.path.display()
                    )));
                }
                Command::Send { dry_run: true, .. } | Command::Preview { .. } => println!(
                    "note: {SECRET_VAR} is not usable ({}); using a throwaway value: \
                     the unsubscribe links of these messages will not verify",
                    match problem {
                        SecretError::Missing => "unset".to_owned(),
                        SecretError::TooShort(n) => format!("{n} bytes, too short"),
                    }
                ),
                Command::Check | Command::Status { .. } | Command::VerifyUnsubscribe { .. } => {}
            }
            (Secret::throwaway(), Some(problem))
        }
    };
    let unsubscribe = Unsubscribe {
        campaign_id: campaign.id.clone(),
        mailto: settings.mailto.clone(),
        url: settings.url.clone(),
        footer: settings.footer.clone(),
        link_text: settings.link_text.clone(),
        secret,
    };
    Ok((Some(Arc::new(unsubscribe)), problem))
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

/// What `check` finds before rendering anyone's message: the campaign, the letter, the secret,
/// the suppression files.
fn loaded_findings(loaded: &Loaded) -> Vec<Finding> {
    let campaign = &loaded.campaign;
    let mut findings = lint::campaign(campaign);
    findings.extend(lint::letter(&loaded.letter, campaign.allow_utm));
    if let Some(problem) = &loaded.secret_problem {
        findings.push(Finding::error(
            format!("{}: [unsubscribe]", campaign.path.display()),
            format!("the unsubscribe links need a secret: {problem}"),
            "set it in the environment of every `missive send` (never in campaign.toml)",
        ));
    }
    findings.extend(loaded.suppression_skipped.iter().map(|skipped| {
        Finding::warning(
            format!("{}:{}", skipped.path.display(), skipped.line),
            skipped.problem.clone(),
            "correct the address or delete the line",
        )
    }));
    findings
}

fn check(loaded: &Loaded) -> anyhow::Result<Exit> {
    let campaign = &loaded.campaign;
    let mut findings = loaded_findings(loaded);
    let mut reader = loaded.recipients()?;
    let frame = loaded.frame();
    let (mut valid, mut rejected, mut suppressed) = (0u64, 0u64, 0u64);
    // The layout's lints read one message; only the size can differ between people.
    let mut linted_one = false;
    let mut largest: Option<(usize, String)> = None;
    while let Some(row) = reader.next_row()? {
        match row {
            Row::Valid(recipient) => {
                let rendered = render(&loaded.letter, &frame, &recipient);
                let place = format!(
                    "{}:{}: the message to {}",
                    loaded.recipients_path.display(),
                    recipient.line,
                    recipient.email
                );
                if !linted_one {
                    linted_one = true;
                    findings.extend(lint::rendered(
                        &rendered,
                        &loaded.letter.links,
                        campaign.allow_utm,
                        &place,
                    ));
                } else if largest
                    .as_ref()
                    .is_none_or(|(size, _)| rendered.html.len() > *size)
                {
                    largest = Some((rendered.html.len(), place));
                }
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
            Row::Suppressed(..) => suppressed += 1,
            Row::Rejected(error) => {
                rejected += 1;
                println!("{}", error.at(&loaded.recipients_path));
            }
        }
    }
    if let Some((size, place)) = largest {
        findings.extend(lint::html_size(size, &place));
    }
    findings.sort_by_key(|f| f.severity);
    for finding in &findings {
        println!("{finding}");
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    println!(
        "{}: {valid} recipient(s) ready, {rejected} row(s) rejected, {suppressed} suppressed; \
         letter {} ({} sections); {errors} lint error(s), {} warning(s)",
        campaign.path.display(),
        loaded.letter.path.display(),
        loaded.letter.sections.len(),
        findings.len() - errors
    );
    Ok(if rejected == 0 && errors == 0 {
        Exit::Done
    } else {
        Exit::Invalid
    })
}

/// The page `preview` writes for a person (or a headless browser) to look at.
pub const SCREENSHOT_PAGE: &str = "screenshot.html";

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
            Row::Suppressed(recipient, reason) => {
                eprintln!(
                    "skipped: {}:{}: {} is suppressed ({reason}): never mailed",
                    loaded.recipients_path.display(),
                    recipient.line,
                    recipient.email
                );
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
        if written == 0 {
            // The first message also as a page to look at (or screenshot) in a browser.
            let to = recipient.email.to_string();
            let from = loaded.campaign.from.to_string();
            let page = crate::render::screenshot_page(
                &rendered.html,
                &crate::render::Envelope {
                    from: &from,
                    to: &to,
                    subject: &loaded.campaign.subject,
                    preheader: &loaded.campaign.preheader,
                },
            );
            let path = out.join(SCREENSHOT_PAGE);
            std::fs::write(&path, page)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
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
    println!(
        "wrote {written} message(s) to {}; the first one as a page to look at: {}",
        out.display(),
        out.join(SCREENSHOT_PAGE).display()
    );
    Ok(Exit::Done)
}

/// A dry run, or the real thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    DryRun,
    Real { allow_changed_letter: bool },
}

async fn send(
    loaded: &Loaded,
    options: &Options,
    mode: Mode,
    limits: &RunLimits,
) -> anyhow::Result<Exit> {
    let dry_run = mode == Mode::DryRun;
    let campaign = &loaded.campaign;
    let mut limits = limits.clone();
    limits.rate = limits.rate.or(campaign.rate_per_second);
    let mut reader = loaded.recipients()?;

    // A dry run differs only in where it delivers and what it records: the rest is the same path.
    let (endpoint, credentials, log, replay, capture): (_, _, Box<dyn SendLog>, _, _) = if dry_run {
        let (endpoint, capture) = dry_run_target(campaign, options.smtp.as_ref()).await?;
        (
            endpoint,
            None,
            Box::new(MemoryLog::default()),
            Replay::default(),
            capture,
        )
    } else {
        let endpoint = options
            .smtp
            .clone()
            .unwrap_or_else(|| campaign.smtp.clone());
        let log_path = options
            .log
            .clone()
            .unwrap_or_else(|| campaign.default_log_path());
        let credentials = credentials(campaign)?;
        let (log, replay) = FileLog::open(&log_path)?;
        let allowed = mode
            == (Mode::Real {
                allow_changed_letter: true,
            });
        if letter_changed(&replay, &loaded.fingerprint) && !allowed {
            return Err(anyhow::Error::new(Unsendable).context(format!(
                "the letter changed since sending began ({} records attempts of letter {}, it is now {}): \
                 some people got the old one. Restore it, or pass --allow-changed-letter to send \
                 the new one to the rest",
                log_path.display(),
                replay.letters().iter().cloned().collect::<Vec<_>>().join(", "),
                loaded.fingerprint
            )));
        }
        (endpoint, credentials, Box::new(log), replay, None)
    };
    let mailer = Mailer::new(
        &endpoint,
        credentials,
        campaign.smtp_timeout,
        campaign.pool_size,
    )?;
    let (log, log_thread) = LogWriter::spawn(log);
    let engine = Engine {
        mailer: Arc::new(mailer),
        log,
        pool_size: campaign.pool_size as usize,
        retry: campaign.retry.clone(),
    };
    let shutdown = crate::send::shutdown_on_signals();
    let result = crate::send::run(
        &loaded.content(),
        &mut reader,
        &replay,
        &engine,
        &limits,
        &shutdown,
    )
    .await;
    // Every record written must be synced before we say anything about the run.
    drop(engine);
    log_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the send log writer crashed"))?;
    let report = result?;
    if let Some(capture) = capture {
        println!(
            "dry run: no mailcatcher at {}; {} message(s) captured as .eml files in {}",
            campaign.dry_run_smtp,
            capture.received(),
            capture.outbox().display()
        );
    }
    print_report(&report, &endpoint, dry_run, &loaded.recipients_path);
    Ok(if report.is_complete() {
        Exit::Done
    } else {
        Exit::TryAgain
    })
}

/// The login for a real send: the username from the campaign, the password only from the
/// environment. A username without a password refuses the send rather than trying without.
fn credentials(campaign: &Campaign) -> anyhow::Result<Option<Credentials>> {
    let Some(username) = &campaign.smtp_username else {
        return Ok(None);
    };
    match std::env::var(PASSWORD_VAR) {
        Ok(password) if !password.is_empty() => {
            Ok(Some(Credentials::new(username.clone(), password)))
        }
        _ => Err(anyhow::Error::new(Unsendable).context(format!(
            "smtp.username is set but {PASSWORD_VAR} is empty or unset; refusing to send"
        ))),
    }
}

/// Where a dry run delivers: `--smtp`, else the campaign's mailcatcher if one listens, else an
/// embedded capture server writing into the outbox.
async fn dry_run_target(
    campaign: &Campaign,
    requested: Option<&Endpoint>,
) -> anyhow::Result<(Endpoint, Option<CaptureServer>)> {
    if let Some(endpoint) = requested {
        return Ok((endpoint.clone(), None));
    }
    let endpoint = campaign.dry_run_smtp.clone();
    let address = (endpoint.host.as_str(), endpoint.port);
    let listening = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .is_ok_and(|connected| connected.is_ok());
    if listening {
        println!("dry run: delivering to the mailcatcher at {endpoint}");
        return Ok((endpoint, None));
    }
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(':', "");
    let outbox = campaign.outbox.join(format!("{}-{stamp}", campaign.id));
    let capture = CaptureServer::start(&outbox).await.with_context(|| {
        format!(
            "cannot start the capture server writing to {}",
            outbox.display()
        )
    })?;
    let endpoint = Endpoint {
        security: crate::campaign::Security::Plain,
        host: "127.0.0.1".into(),
        port: capture.port(),
    };
    Ok((endpoint, Some(capture)))
}

/// True when the log shows attempts, and none of them of this letter.
fn letter_changed(replay: &Replay, fingerprint: &str) -> bool {
    !replay.letters().is_empty() && !replay.letters().contains(fingerprint)
}

fn print_report(report: &RunReport, target: &Endpoint, dry_run: bool, recipients: &Path) {
    let mode = if dry_run { "dry run" } else { "send" };
    println!(
        "{mode} to {target}: {} sent, {} failed, {} deferred, {} already done, {} rejected row(s), {} suppressed{}",
        report.sent,
        report.failed,
        report.deferred,
        report.already_done,
        report.rejected.len(),
        report.suppressed,
        if report.resent_in_doubt > 0 {
            format!(
                ", {} in-doubt message(s) sent again",
                report.resent_in_doubt
            )
        } else {
            String::new()
        }
    );
    for error in &report.rejected {
        println!("  rejected {}", error.at(recipients));
    }
    match &report.stopped {
        Some(Stopped::MaxMessages) => {
            println!("stopped: --max-messages reached; run again to go on")
        }
        Some(Stopped::MaxDuration) => {
            println!("stopped: --max-duration reached; run again to go on")
        }
        Some(Stopped::Interrupted) => println!("stopped: interrupted; run again to go on"),
        Some(Stopped::Unreachable(error)) => {
            println!("stopped: the server is unreachable ({error}); run again later")
        }
        None if report.deferred + report.not_due > 0 => {
            let next = report
                .next_due
                .map(|due| format!("; the next is due {}", crate::sendlog::timestamp(due)))
                .unwrap_or_default();
            println!(
                "{} deferred message(s) to retry{next}: run again later",
                report.deferred + report.not_due
            );
        }
        None => {}
    }
}

/// Counts of recipients by where they stand.
#[derive(Debug, Default, serde::Serialize)]
struct Counts {
    sent: u64,
    failed: u64,
    deferred: u64,
    in_doubt: u64,
    pending: u64,
    suppressed: u64,
    invalid: u64,
    total: u64,
}

fn status(loaded: &Loaded, options: &Options, json: bool) -> anyhow::Result<Exit> {
    let log_path = options
        .log
        .clone()
        .unwrap_or_else(|| loaded.campaign.default_log_path());
    let replay = FileLog::read(&log_path)?;
    let mut counts = Counts::default();
    let mut reader = loaded.recipients()?;
    while let Some(row) = reader.next_row()? {
        counts.total += 1;
        let (recipient, suppressed) = match row {
            Row::Valid(recipient) => (recipient, false),
            Row::Suppressed(recipient, _) => (recipient, true),
            Row::Rejected(_) => {
                counts.invalid += 1;
                continue;
            }
        };
        match replay.get(&recipient.key).map(|e| e.status) {
            Some(Status::Sent) => counts.sent += 1,
            Some(Status::Failed) => counts.failed += 1,
            // Whatever else the log says, a suppressed person will not be mailed.
            _ if suppressed => counts.suppressed += 1,
            Some(Status::Deferred) => counts.deferred += 1,
            Some(Status::InDoubt) => counts.in_doubt += 1,
            None => counts.pending += 1,
        }
    }
    if json {
        println!("{}", serde_json::to_string(&counts)?);
    } else {
        println!(
            "campaign {} (log {})",
            loaded.campaign.id,
            log_path.display()
        );
        for (label, n) in [
            ("sent", counts.sent),
            ("failed (permanently)", counts.failed),
            ("deferred (to retry)", counts.deferred),
            ("in doubt", counts.in_doubt),
            ("not yet attempted", counts.pending),
            ("suppressed", counts.suppressed),
            ("rejected rows", counts.invalid),
            ("total rows", counts.total),
        ] {
            println!("  {label:<22}{n:>9}");
        }
    }
    Ok(Exit::Done)
}
