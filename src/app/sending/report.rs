//! What `send` prints once its run is over, for a person (or cron's mail) to read: the counts,
//! the rows rejected, a relay set aside and what the other carried, messages left in doubt,
//! why the run stopped, and the dead mailboxes it added to the suppression list.

use std::path::Path;

use super::dead_mailboxes::Recorded;
use super::{FALLBACK_PASSWORD_VAR, PASSWORD_VAR};
use crate::send::{RunReport, Stopped};
use crate::sendlog::timestamp;
use crate::smtp::{Endpoint, RelayName};

/// What became of the dead mailboxes met, if any.
pub(super) fn print_dead_mailboxes(recorded: &Recorded) {
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

/// The run's counts and why it stopped, as a real send or a dry run (`dry_run`) did them.
pub(super) fn print_report(
    report: &RunReport,
    target: &Endpoint,
    dry_run: bool,
    recipients: &Path,
) {
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
        None if report.held_elsewhere() > 0 => {
            let left = report
                .unsettled_in_log
                .map(|unsettled| {
                    format!(", and {unsettled} of the campaign's people not yet sent or failed")
                })
                .unwrap_or_default();
            println!(
                "{} person(s) held by another sender of the campaign{left}: run again later to \
                 see them through (what a sender that died held is taken over once its lease \
                 runs out)",
                report.counts.taken
            )
        }
        None if report.counts.taken > 0 && report.is_complete() => println!(
            "{} person(s) were held by another sender of the campaign, and every one of the \
             campaign's people is now sent or failed: the campaign is done",
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
