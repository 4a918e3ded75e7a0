//! The `status` command: where each recipient of the list stands according to the send log,
//! and what that means for the next runs (quotas left, next retry, an estimate of the end).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::log_place::LogPlace;
use super::{Exit, Loaded, Options};
use crate::ratelimit::{Quotas, unix_seconds};
use crate::sendlog::{CampaignClaim, SendLogError, timestamp};
use crate::window::State;

mod count;

/// How many people of the list each suppression list holds.
#[derive(Debug, Default, Serialize)]
struct SuppressedBy {
    unsubscribed: u64,
    bounced: u64,
    complained: u64,
}

/// What `status --json` prints. The counts are the contract's; the rest helps a person or a
/// script decide what to do next.
#[derive(Debug, Default, Serialize)]
struct Report {
    sent: u64,
    failed: u64,
    deferred: u64,
    in_doubt: u64,
    pending: u64,
    suppressed: u64,
    invalid: u64,
    /// Not attempted before the campaign's `send_before`, now past: never to be mailed. (A
    /// deferred message it cut off is given up: `failed` once a run has recorded it.)
    expired: u64,
    total: u64,
    /// People of the list (valid rows) found on a suppression list now, by the list: mailed
    /// already or not, so those who unsubscribed, bounced or complained since sending began
    /// count too. A person is counted once, under the first list that names them (the
    /// campaign's `[suppression]` files in order, then the default files).
    suppressed_by: SuppressedBy,
    /// Permanent failures by reply code.
    failed_reasons: BTreeMap<String, u64>,
    sent_via_fallback: u64,
    /// When the first deferred message is due again.
    next_retry: Option<String>,
    /// Attempts over the last hour.
    attempts_last_hour: u64,
    /// What each configured quota has left now.
    quota_left: BTreeMap<&'static str, u64>,
    /// Seconds until everyone is attempted at the configured pace, when one is configured.
    eta_secs: Option<u64>,
    /// The log shows attempts of a letter other than the current one.
    letter_changed: bool,
    /// False when the campaign has no send log yet (never sent).
    log_exists: bool,
    /// The campaign's `send_before`, when it has one (RFC 3339).
    send_before: Option<String>,
    /// The campaign's `[window]` as written (`mon tue 09:00-18:00 Europe/Paris`), if any.
    window: Option<String>,
    /// When the window next opens (RFC 3339, UTC), when it is closed now.
    window_opens: Option<String>,
    /// When the window closes (RFC 3339, UTC), when it is open now.
    window_closes: Option<String>,
    /// For a log in a database: how many senders hold a live lease on the campaign now.
    #[serde(skip_serializing_if = "Option::is_none")]
    senders_active: Option<u64>,
}

pub(super) fn status(loaded: &Loaded, options: &Options, json: bool) -> anyhow::Result<Exit> {
    let campaign = &loaded.campaign;
    let default_log = campaign.default_log_path();
    let (place, remembered) = super::send_log(campaign, options)?;
    let log_exists = match &place {
        LogPlace::File(log_path) => {
            let log_exists = log_path.try_exists().unwrap_or(true);
            if !log_exists && options.log.is_none() && remembered.is_some() {
                // The log the campaign recorded as its own is gone: `send` refuses to start
                // over.
                return Err(SendLogError::LogLost {
                    campaign: campaign.id.clone(),
                    log: log_path.display().to_string(),
                    problem: "missing",
                    state: CampaignClaim::state_path(campaign.dir(), &campaign.id),
                }
                .into());
            }
            // No log where the campaign keeps it: never sent. No log where --log says: a typo
            // (or the wrong folder), which must not read as "nothing sent yet" while people
            // were mailed. A wrong argument, like clap's usage errors: exit 1, not the
            // campaign's 65.
            if !log_exists && *log_path != default_log {
                anyhow::bail!(
                    "{}: no send log there (--log names a file that does not exist); check the \
                     path: without --log, status reads {}",
                    log_path.display(),
                    default_log.display()
                );
            }
            log_exists
        }
        // Known once read: a database without the campaign reads as an empty log.
        LogPlace::Database(_) => true,
    };
    let now = SystemTime::now();
    let mut report = Report::default();
    let reader = loaded.recipients()?;
    let (replay, personal_opens) =
        count::read_and_count(&mut report, reader, || place.read(campaign), campaign, now)?;
    report.log_exists = log_exists && (matches!(place, LogPlace::File(_)) || !replay.is_empty());
    report.failed_reasons = replay
        .failed_reasons()
        .into_iter()
        .map(|(reason, n)| (reason.to_owned(), n))
        .collect();
    report.sent_via_fallback = replay.sent_via_fallback();
    report.next_retry = replay.next_retry().map(timestamp);
    let hour_ago = unix_seconds(now).saturating_sub(3600);
    report.attempts_last_hour = replay
        .history()
        .range(hour_ago..)
        .map(|(_, n)| u64::from(*n))
        .sum();
    let mut quotas = Quotas::new(&campaign.limits, replay.history());
    report.quota_left = quotas
        .left(now)
        .into_iter()
        .map(|(window, _, left)| (window, left))
        .collect();
    report.eta_secs = eta(
        report.pending + report.deferred + report.in_doubt,
        campaign,
        now,
    );
    report.letter_changed = super::letter_changed(&replay, &loaded.fingerprint);
    report.send_before = campaign.send_before.map(timestamp);
    if let Some(window) = &campaign.window {
        report.window = Some(window.to_string());
        match (&window.time_zone_column, window.at(now)) {
            // Each person's own: when it first opens for someone still waiting; a close
            // differs from person to person.
            (Some(_), _) => report.window_opens = personal_opens.map(timestamp),
            (None, State::Open { closes }) => report.window_closes = Some(timestamp(closes)),
            (None, State::Closed { opens }) => report.window_opens = Some(timestamp(opens)),
        }
    }

    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report, campaign, &place);
        // Whether `send` would take this log without --new-log.
        if let Some(in_use) = &remembered
            && *in_use != place.name()
        {
            println!(
                "  note: the campaign has been sending with the log {in_use}: `send` with this \
                 one refuses unless --new-log"
            );
        }
    }
    Ok(Exit::Done)
}

/// Seconds to attempt `remaining` messages at the tightest of the configured pace and quotas.
/// How long the people left would take at the campaign's pace. With a `[window]`, only its
/// open hours count, and `per_day` caps each opening (read in the window's own zone, even when
/// people have their own: an estimate).
fn eta(remaining: u64, campaign: &crate::campaign::Campaign, now: SystemTime) -> Option<u64> {
    let limits = &campaign.limits;
    let pace = |per_day: Option<f64>| {
        [
            limits.rate,
            limits.per_minute.map(|n| f64::from(n) / 60.0),
            limits.per_hour.map(|n| f64::from(n) / 3600.0),
            per_day,
        ]
        .into_iter()
        .flatten()
        .reduce(f64::min)
    };
    if let Some(window) = &campaign.window {
        let done = window.finish(now, remaining, pace(None), limits.per_day.map(u64::from))?;
        return Some(
            done.duration_since(now)
                .unwrap_or_default()
                .as_secs_f64()
                .ceil() as u64,
        );
    }
    let per_second = pace(limits.per_day.map(|n| f64::from(n) / 86_400.0))?;
    Some((remaining as f64 / per_second).ceil() as u64)
}

fn print_text(report: &Report, campaign: &crate::campaign::Campaign, log: &LogPlace) {
    if report.log_exists {
        println!("campaign {} (log {log})", campaign.id);
    } else {
        println!(
            "campaign {} (no send log yet at {log}: nothing sent)",
            campaign.id
        );
    }
    for (label, n) in [
        ("sent", report.sent),
        ("failed (permanently)", report.failed),
        ("deferred (to retry)", report.deferred),
        ("in doubt", report.in_doubt),
        ("not yet attempted", report.pending),
        ("suppressed", report.suppressed),
        ("rejected rows", report.invalid),
        ("expired (send_before)", report.expired),
        ("total rows", report.total),
    ] {
        println!("  {label:<22}{n:>9}");
    }
    let by = &report.suppressed_by;
    println!(
        "  on suppression lists: {} unsubscribed, {} bounced, {} complained (mailed already or not)",
        by.unsubscribed, by.bounced, by.complained
    );
    for (reason, n) in &report.failed_reasons {
        println!("    failed with {reason}: {n}");
    }
    if let Some(active) = report.senders_active {
        println!("  senders active now: {active}");
    }
    if report.sent_via_fallback > 0 {
        println!(
            "  sent through the fallback relay: {}",
            report.sent_via_fallback
        );
    }
    if let Some(before) = &report.send_before {
        println!("  send_before {before}: nothing is sent from then on");
    }
    let own_zones = campaign
        .window
        .as_ref()
        .and_then(|w| w.time_zone_column.as_deref());
    if let Some(window) = &report.window {
        match (&report.window_opens, &report.window_closes) {
            // Open or closed depends on the person: closed for someone still to be mailed.
            (Some(opens), _) if own_zones.is_some() => println!(
                "  window {window}, in each person's own time zone (column `{}`): closed for \
                 some still to be mailed, the first opens {opens}",
                own_zones.unwrap_or_default()
            ),
            (Some(opens), _) => println!("  window {window}: closed, opens {opens}"),
            (_, Some(closes)) => println!("  window {window}: open, closes {closes}"),
            _ => {}
        }
    }
    if let Some(next) = &report.next_retry {
        println!("  next retry due {next}");
    }
    println!("  attempts in the last hour: {}", report.attempts_last_hour);
    for (window, left) in &report.quota_left {
        println!("  quota left this {window}: {left}");
    }
    if let Some(eta) = report.eta_secs {
        println!(
            "  at the configured pace, the rest takes about {}",
            humantime::format_duration(std::time::Duration::from_secs(eta))
        );
    }
    if report.letter_changed {
        println!(
            "  the letter changed since sending began: `send` refuses unless --allow-changed-letter"
        );
    }
}
