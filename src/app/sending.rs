//! The `send` command: sets up the relays, the pace, the send log and the progress display
//! around the engine, and reports what the run did. A real send reaches the campaign's relays
//! (`relays`) and also keeps the dead mailboxes servers refuse out of the next campaigns
//! (`dead_mailboxes`); a dry run goes the same way to a local catcher (`dry_run`). What the run
//! did is printed by `report`. `send --test` mails one person's letter to test addresses, and
//! nothing else (`test_send`).

mod dead_mailboxes;
mod dry_run;
mod expired;
mod progress_bar;
mod relays;
mod report;
mod test_send;
mod window;

use std::sync::Arc;
use std::time::SystemTime;

use super::{Exit, Loaded, Options, Unsendable};
use crate::error::Classify;
use crate::lint::{self, Severity};
use crate::ratelimit::Pace;
use crate::send::{Engine, InDoubt, Progress, RunLimits};
use crate::sendlog::{LogWriter, MemoryLog, Replay, SendLog, timestamp};
use crate::suppression::Reason;
use dead_mailboxes::DeadMailboxes;
use expired::{print_expired, say_if_expired};
use progress_bar::progress_bar;
use report::{print_dead_mailboxes, print_report};
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
    // is open for. A rehearsal is there to show every message before the real send, usually
    // ahead of its hours: it ignores every window (and send_after), and says so.
    let personal_window = campaign
        .window
        .as_ref()
        .filter(|_| !send.dry_run)
        .and_then(crate::window::Personal::of)
        .map(Box::new);
    if send.dry_run {
        window::print_ignored(campaign);
    }
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
        let (route, capture) = dry_run::route(campaign, options.smtp.as_ref()).await?;
        pace_limits = dry_run::pace(&pace_limits);
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
        let route = relays::route(campaign, options)?;
        let (log, replay, claim) = log_place.open(campaign, send.new_log, &loaded.fingerprint)?;
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
        // Senders started together on a shared log see no attempts of each other's yet.
        let elsewhere: Vec<_> = replay
            .sending_elsewhere()
            .iter()
            .filter(|letter| **letter != loaded.fingerprint)
            .cloned()
            .collect();
        if !elsewhere.is_empty() && !send.allow_changed_letter {
            return Err(anyhow::Error::new(Unsendable).context(format!(
                "another sender of the campaign in {} is sending letter {} now, and this one's \
                 is {}: the senders' campaign files, letters or attachments differ (the table \
                 missive.senders names each one's host, pid and letter). Make them the same on \
                 every host, or pass --allow-changed-letter to send this one to the rest",
                log_place,
                elsewhere.join(", "),
                loaded.fingerprint
            )));
        }
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
    let mut log = log_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the send log writer crashed"))?;
    // The run is over, its refusals all told: this waits only for the last of them.
    let dead_mailboxes = dead_mailboxes.map(DeadMailboxes::finish);
    let mut report = result?;
    if report.counts.taken > 0 && report.stopped.is_none() {
        // Whether the senders that held them have seen them through decides between "done"
        // and "run again" for a cron job; a log that cannot say leaves it at "run again".
        report.unsettled_in_log = log.unsettled().unwrap_or_else(|error| {
            tracing::warn!(%error, "could not ask the send log whether the campaign is done");
            None
        });
    }
    // Ends a shared log's lease now, before the report.
    drop(log);
    if let Some(capture) = &capture {
        dry_run::print_captured(capture, campaign);
    }
    print_report(&report, &target, send.dry_run, &loaded.recipients_path);
    print_expired(&report, campaign);
    window::print_closed(&report, campaign);
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
