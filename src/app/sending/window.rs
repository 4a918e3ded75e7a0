//! What `send` says of the campaign's `[window]`: that it is closed when a run starts (nothing
//! is sent, exit 75, and when it opens), that it closed during the run, or, read in each
//! person's own zone, who waits for theirs; and that a dry run ignores it.

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

/// A dry run captures everyone whatever the hour: it says so when the campaign has a window,
/// and what the real send will do instead.
pub(super) fn print_ignored(campaign: &Campaign) {
    let Some(window) = &campaign.window else {
        return;
    };
    let whom = match &window.time_zone_column {
        Some(column) => format!(
            "mails each person only while it is open in their own time zone (column `{column}`)"
        ),
        None => "goes only while it is open".to_owned(),
    };
    println!(
        "dry run: the sending window ({window}) is ignored and everyone is captured; the real \
         send {whom} (`missive status` says when it opens)"
    );
}

/// When the window that stopped this run opens again; or, read in each person's own zone,
/// how many people wait for theirs and when the first opens.
pub(super) fn print_closed(report: &RunReport, campaign: &Campaign) {
    if let (Some(opens), Some(window)) = (report.window_opens, &campaign.window) {
        println!(
            "{} person(s) wait for the sending window ({window}) in their own time zone (column \
             `{}`); the first opens {}: run again then to go on",
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
