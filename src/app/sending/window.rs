//! What `send` says of the campaign's `[window]`: that it is closed when a run starts (nothing
//! is sent, exit 75, and when it opens), or that it closed during the run.

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

/// When the window that stopped this run opens again.
pub(super) fn print_closed(report: &RunReport, campaign: &Campaign) {
    if let (Some(Stopped::WindowClosed), Some(window)) = (&report.stopped, &campaign.window)
        && let State::Closed { opens } = window.at(SystemTime::now())
    {
        println!(
            "the sending window ({window}) opens again {}: run again then to go on",
            window.describe(opens)
        );
    }
}
