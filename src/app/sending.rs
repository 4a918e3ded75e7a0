//! The `send` command: sets up the relays, the pace, the send log and the progress display
//! around the engine, and reports what the run did. A real send also keeps the dead mailboxes
//! servers refuse out of the next campaigns (`dead_mailboxes`). `send --test` mails one
//! person's letter to test addresses, and nothing else (`test_send`).

mod dead_mailboxes;
mod expired;
mod progress_bar;
mod test_send;
mod window;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use lettre::transport::smtp::authentication::Credentials;

use super::{Exit, Loaded, Options, Unsendable};
use crate::campaign::{Campaign, RelaySettings};
use crate::capture::CaptureServer;
use crate::error::Classify;
use crate::lint::{self, Severity};
use crate::ratelimit::{Limits, Pace};
use crate::send::{Engine, InDoubt, Progress, Route, RunLimits, RunReport, Stopped};
use crate::sendlog::{LogWriter, MemoryLog, Replay, SendLog, timestamp};
use crate::smtp::{Endpoint, Relay, RelayName};
use crate::suppression::Reason;
use dead_mailboxes::{DeadMailboxes, Recorded};
use expired::{print_expired, say_if_expired};
use progress_bar::progress_bar;
pub use test_send::TestSend;

pub use crate::campaign::{FALLBACK_PASSWORD_VAR, PASSWORD_VAR};

/// Names the errors `check` would find in the campaign and its letter. A send does not refuse
/// on them (`check` is where a campaign is judged, and a link the lints dislike may be right),
/// but one started without a check should not go out silently with a tracking pixel.
fn warn_of_lint_errors(loaded: &Loaded) {
    let campaign = &loaded.campaign;
    let findings = lint::campaign(campaign).into_iter().chain(
        loaded
            .letters
            .iter()
            .flat_map(|letter| lint::letter(letter, campaign.allow_utm)),
    );
    for finding in findings.filter(|f| f.severity == Severity::Error) {
        tracing::warn!(
            fix = %finding.fix,
            "{}: {} (a lint error: `missive check` would refuse this campaign; sending anyway)",
            finding.place,
            finding.message
        );
    }
}

/// What `send` was asked to do.
#[derive(Debug, Clone)]
pub struct SendOptions {
    pub dry_run: bool,
    pub limits: RunLimits,
    /// Go on although the letter changed since sending began.
    pub allow_changed_letter: bool,
    pub in_doubt: InDoubt,
    /// A log other than the one the campaign has been using is meant.
    pub new_log: bool,
    /// `--test`: mail the letter to these addresses only, touching no log.
    pub test: Option<TestSend>,
}

pub(super) async fn send(
    loaded: &Loaded,
    options: &Options,
    send: &SendOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Exit> {
    let campaign = &loaded.campaign;
    warn_of_lint_errors(loaded);
    if let Some(test) = &send.test {
        return test_send::send(loaded, options, test).await;
    }
    // A window read in each person's zone is open somewhere: the run goes, and mails whom it
    // is open for. A rehearsal does the same: it shows whom the real send would mail now, as
    // no run ever mails everyone at once. The campaign's one window says only when a run may
    // go, not whom it mails: a rehearsal ignores it, as it ignores send_after.
    let personal_window = campaign
        .window
        .as_ref()
        .and_then(crate::window::Personal::of)
        .map(Box::new);
    let window_closes = match send.dry_run || personal_window.is_some() {
        true => None,
        false => match window::closed_now(campaign) {
            Ok(closes) => closes,
            Err(exit) => return Ok(exit),
        },
    };
    let mut reader = loaded.recipients()?;
    let mut pace_limits = campaign.limits.clone();
    pace_limits.rate = send.limits.rate.or(pace_limits.rate);

    // A dry run differs only in where it delivers and what it records: the rest is the same path.
    // The campaign's claim is held until the run's last record is synced.
    let (route, log, replay, capture, _claim): (_, Box<dyn SendLog>, _, _, _) = if send.dry_run {
        let (endpoint, capture) = dry_run_target(campaign, options.smtp.as_ref()).await?;
        // Quotas protect the real world; a rehearsal to a local catcher ignores them.
        pace_limits = Limits {
            rate: pace_limits.rate,
            burst: pace_limits.burst,
            ..Limits::default()
        };
        let primary = Relay::new(
            RelayName::Primary,
            &endpoint,
            None,
            None,
            campaign.smtp_timeout,
        )?;
        let route = Route::new(primary, None, campaign.failover.clone());
        (
            route,
            Box::new(MemoryLog::default()),
            Replay::default(),
            capture,
            None,
        )
    } else {
        if let Some(after) = campaign.send_after
            && SystemTime::now() < after
        {
            println!(
                "not yet: {} says send_after = {}; run again then",
                campaign.path.display(),
                timestamp(after)
            );
            return Ok(Exit::TryAgain);
        }
        say_if_expired(campaign);
        let (log_place, _) = super::send_log(campaign, options)?;
        let endpoint = options.smtp.as_ref().unwrap_or(&campaign.smtp.endpoint);
        let timeout = campaign.smtp_timeout;
        let primary = relay(RelayName::Primary, &campaign.smtp, endpoint, timeout)?;
        let fallback = match &campaign.fallback {
            // `--smtp` names one server for this run: no fallback behind it.
            Some(settings) if options.smtp.is_none() => Some(relay(
                RelayName::Fallback,
                settings,
                &settings.endpoint,
                timeout,
            )?),
            _ => None,
        };
        let (log, replay, claim) = log_place.open(campaign, send.new_log)?;
        if super::letter_changed(&replay, &loaded.fingerprint) && !send.allow_changed_letter {
            return Err(anyhow::Error::new(Unsendable).context(format!(
                "the letter changed since sending began ({} records attempts of letter {}, it is now {}): \
                 some people got the old one. Restore it, or pass --allow-changed-letter to send \
                 the new one to the rest",
                log_place,
                replay.letters().iter().cloned().collect::<Vec<_>>().join(", "),
                loaded.fingerprint
            )));
        }
        let route = Route::new(primary, fallback, campaign.failover.clone());
        (route, log, replay, None, Some(claim))
    };
    let target = route.primary().endpoint().clone();
    let mut log = log;
    // A log shared by several senders keeps the campaign's pace and quotas for all of them.
    let shared_pace = log.share_pace(&pace_limits);
    let (log, log_thread) = LogWriter::spawn(log);
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(&loaded.recipients_path, &progress);
    // A rehearsal's refusals come from a local catcher: they say nothing of anyone's mailbox.
    let (refusals, dead_mailboxes) = if send.dry_run {
        (None, None)
    } else {
        let bounced = campaign.suppression_file(Reason::Bounced);
        let (refusals, dead_mailboxes) = DeadMailboxes::start(bounced);
        (Some(refusals), Some(dead_mailboxes))
    };
    let engine = Engine {
        route,
        log,
        connections: campaign.pool_size as usize,
        retry: campaign.retry.clone(),
        pace: Pace::new(&pace_limits, replay.history()).sharing(shared_pace),
        in_doubt: send.in_doubt,
        progress: Arc::clone(&progress),
        refusals,
    };
    // A rehearsal may come after the real thing's window: it sends to a catcher.
    let limits = RunLimits {
        send_before: campaign.send_before.filter(|_| !send.dry_run),
        window_closes,
        personal_window,
        ..send.limits.clone()
    };
    let result = crate::send::run(
        &loaded.content(),
        &mut reader,
        &replay,
        engine,
        &limits,
        shutdown,
    )
    .await;
    if let Some((bar, ticker)) = bar {
        ticker.abort();
        bar.finish_and_clear();
    }
    // Every record written must be synced before we say anything about the run.
    log_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the send log writer crashed"))?;
    // The run is over, its refusals all told: this waits only for the last of them.
    let dead_mailboxes = dead_mailboxes.map(DeadMailboxes::finish);
    let report = result?;
    if let Some(capture) = capture {
        println!(
            "dry run: no mailcatcher at {}; {} message(s) captured as .eml files in {}",
            campaign.dry_run_smtp,
            capture.received(),
            capture.outbox().display()
        );
    }
    print_report(&report, &target, send.dry_run, &loaded.recipients_path);
    print_expired(&report, campaign);
    window::print_closed(&report, campaign, send.dry_run);
    if let Some(recorded) = &dead_mailboxes {
        print_dead_mailboxes(recorded);
    }
    Ok(match &report.stopped {
        Some(stopped) => stopped.kind().into(),
        None if report.is_complete() => Exit::Done,
        // Deferred messages, or messages in doubt: a later run's.
        None => Exit::TryAgain,
    })
}

/// The relay `settings` describe, reached at `endpoint` (theirs, or `--smtp`'s) for a real send:
/// with its login and the certificate authorities it trusts, both refused now if unusable.
fn relay(
    name: RelayName,
    settings: &RelaySettings,
    endpoint: &Endpoint,
    timeout: Duration,
) -> anyhow::Result<Relay> {
    let login = credentials(settings.username.as_deref(), settings.password_var)?;
    let roots = super::trusted_roots(settings.ca_file.as_deref(), &settings.ca_field())?;
    Ok(Relay::new(
        name,
        endpoint,
        login,
        roots.as_deref(),
        timeout,
    )?)
}

/// The login for a real send: the username from the campaign, the password only from the
/// environment. A username without a password refuses the send rather than trying without.
fn credentials(username: Option<&str>, variable: &str) -> anyhow::Result<Option<Credentials>> {
    let Some(username) = username else {
        return Ok(None);
    };
    match std::env::var(variable) {
        Ok(password) if !password.is_empty() => {
            Ok(Some(Credentials::new(username.to_owned(), password)))
        }
        _ => Err(anyhow::Error::new(Unsendable).context(format!(
            "a username is set for the relay but {variable} is empty or unset; refusing to send"
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
    let address = (endpoint.host(), endpoint.port());
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
    let name = format!("{}-{stamp}", campaign.id);
    let capture = CaptureServer::start(&campaign.outbox, &name)
        .await
        .with_context(|| {
            format!(
                "cannot start the capture server writing to a new folder {name} in {} \
                 ([dry_run] outbox in {})",
                campaign.outbox.display(),
                campaign.path.display()
            )
        })?;
    Ok((Endpoint::loopback(capture.port()), Some(capture)))
}

/// What became of the dead mailboxes met, if any.
fn print_dead_mailboxes(recorded: &Recorded) {
    let list = recorded.path.display();
    if !recorded.added.is_empty() || recorded.known > 0 {
        println!(
            "{} address(es) refused as dead mailboxes added to {list} (the next campaigns \
             skip them){}",
            recorded.added.len(),
            match recorded.known {
                0 => String::new(),
                known => format!("; {known} more were there already"),
            }
        );
    }
    if let Some(error) = &recorded.error {
        println!(
            "could not add {} dead mailbox(es) to {list} ({error}): they stay `failed` in the \
             send log, but the next campaigns may mail them",
            recorded.missed.len()
        );
    }
}

fn print_report(report: &RunReport, target: &Endpoint, dry_run: bool, recipients: &Path) {
    let mode = if dry_run { "dry run" } else { "send" };
    let mut extra = String::new();
    if report.counts.resent_in_doubt > 0 {
        extra += &format!(
            ", {} in-doubt message(s) sent again",
            report.counts.resent_in_doubt
        );
    }
    if report.counts.taken > 0 {
        extra += &format!(", {} taken by another sender", report.counts.taken);
    }
    if report.skipped_in_doubt > 0 {
        extra += &format!(", {} in-doubt message(s) skipped", report.skipped_in_doubt);
    }
    if report.counts.via_fallback > 0 {
        extra += &format!(
            ", {} through the fallback relay",
            report.counts.via_fallback
        );
    }
    println!(
        "{mode} to {target}: {} sent, {} failed, {} deferred, {} already done, {} rejected row(s), {} suppressed{extra}",
        report.counts.sent,
        report.counts.failed,
        report.counts.deferred,
        report.already_done,
        report.rejected.len(),
        report.suppressed,
    );
    for error in &report.rejected {
        println!("  rejected {}", error.at(recipients));
    }
    // The stop names the relay it stopped on; this line, one set aside before, and what the
    // other relay carried meanwhile: being tried is not carrying (it may be down too).
    if let Some((relay, why)) = &report.set_aside
        && !matches!(&report.stopped, Some(Stopped::Untrusted { relay: stopped, .. }) if stopped == relay)
    {
        let other = relay.other();
        let carried = match other {
            RelayName::Fallback => report.counts.via_fallback,
            RelayName::Primary => report.counts.sent - report.counts.via_fallback,
        };
        let carried = match carried {
            0 => format!("the {other} relay carried no message"),
            n => format!("the {other} relay carried {n} message(s)"),
        };
        println!(
            "the {relay} relay was set aside, its certificate not trusted ({why}); {carried}; \
             mend its url or ca_file before the next run"
        );
    }
    if report.counts.unanswered > 0 {
        // Only a real send's log remembers them for the next run.
        let then = if dry_run {
            "a dry run keeps no send log, so no later run knows of them"
        } else {
            "the next run sends them again with the same Message-ID"
        };
        println!(
            "{} message(s) got no reply after DATA: in doubt; {then}",
            report.counts.unanswered
        );
    }
    match &report.stopped {
        Some(Stopped::MaxMessages) => {
            println!("stopped: --max-messages reached; run again to go on")
        }
        Some(Stopped::MaxDuration) => {
            println!("stopped: --max-duration reached; run again to go on")
        }
        Some(Stopped::WindowClosed) => println!("stopped: the sending window closed"),
        Some(Stopped::Quota(spent)) => println!(
            "stopped: the {} quota is spent until {}; run again then",
            spent.window,
            timestamp(spent.until)
        ),
        Some(Stopped::Interrupted) => println!("stopped: interrupted; run again to go on"),
        Some(Stopped::LogFailed) => println!("stopped: the send log could not be written"),
        Some(Stopped::LeaseLost) => println!(
            "stopped: the send log's database did not renew this sender's lease in time, so \
             others may take its people over; run again once the database is reachable"
        ),
        Some(Stopped::Unreachable(error)) => {
            println!("stopped: the server is unreachable ({error}); run again later")
        }
        Some(Stopped::LoginRefused { relay, why }) => {
            let (section, variable) = match relay {
                RelayName::Fallback => ("[fallback]", FALLBACK_PASSWORD_VAR),
                RelayName::Primary => ("[smtp]", PASSWORD_VAR),
            };
            println!(
                "stopped: the {relay} relay refused the login ({why}); check username under \
                 {section} and the password in {variable}, then run again"
            )
        }
        Some(Stopped::Untrusted { relay, why }) => println!(
            "stopped: the {relay} relay's certificate cannot be trusted ({why}); \
             waiting will not mend it: mend it, then run again"
        ),
        None if report.counts.taken > 0 => println!(
            "{} person(s) held by another sender of the campaign: run again later to see them \
             through (what a sender that died held is taken over once its lease runs out)",
            report.counts.taken
        ),
        None if report.counts.deferred + report.not_due > 0 => {
            let next = report
                .next_due
                .map(|due| format!("; the next is due {}", timestamp(due)))
                .unwrap_or_default();
            println!(
                "{} deferred message(s) to retry{next}: run again later",
                report.counts.deferred + report.not_due
            );
        }
        None => {}
    }
}
