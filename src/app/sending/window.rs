//! What `send` says of the campaign's `[window]`: that it is closed when a run starts (nothing
//! is sent, exit 75, and when it opens), that it closed during the run, or, read in each
//! person's own zone, who waits for theirs (a dry run too).

use std::time::SystemTime;

use crate::app::Exit;
use crate::campaign::Campaign;
use crate::send::{RunReport, Stopped};
use crate::window::State;

/// When the window closes, if the campaign has one and it is open; `Err` when it is closed now:
/// the run must end at once, before any connection.
pub(super) fn closed_now(campaign: &Campaign) -> Result<Option<SystemTime>, Exit> {
    let Some(window) = &campaign.window else {
        return Ok(None);
    };
    match window.at(SystemTime::now()) {
        State::Open { closes } => Ok(Some(closes)),
        State::Closed { opens } => {
            eprintln!(
                "outside the sending window: {} says [window] {window}; nothing sent. It opens \
                 {}: run again then",
                campaign.path.display(),
                window.describe(opens)
            );
            Err(Exit::TryAgain)
        }
    }
}

/// When the window that stopped this run opens again; or, read in each person's own zone,
/// how many people wait for theirs and when the first opens (for a dry run, which keeps no
/// log, that is what the real send would do now, not a reason to run it again).
pub(super) fn print_closed(report: &RunReport, campaign: &Campaign, dry_run: bool) {
    if let (Some(opens), Some(window)) = (report.window_opens, &campaign.window) {
        let then = if dry_run {
            "not mailed by this dry run, as a real send now would not mail them"
        } else {
            "run again then to go on"
        };
        println!(
            "{} person(s) wait for the sending window ({window}) in their own time zone (column \
             `{}`); the first opens {}: {then}",
            report.waiting_for_window,
            window.time_zone_column.as_deref().unwrap_or_default(),
            window.describe(opens)
        );
    }
    if let (Some(Stopped::WindowClosed), Some(window)) = (&report.stopped, &campaign.window)
        && let State::Closed { opens } = window.at(SystemTime::now())
    {
        println!(
            "the sending window ({window}) opens again {}: run again then to go on",
            window.describe(opens)
        );
    }
}
