//! What `send` says of the campaign's `send_before`: that it has passed when a run starts, and
//! how many messages it cut off when a run crosses it. The engine does the work (see
//! [`crate::send`]); this only tells the person at the terminal, or cron's mail.

use std::time::SystemTime;

use crate::campaign::Campaign;
use crate::send::RunReport;
use crate::sendlog::timestamp;

/// Past `send_before` a run sends nothing more; it still goes through the list, to record the
/// deferred messages that can no longer go as failed, and exits 0.
pub(super) fn say_if_expired(campaign: &Campaign) {
    if let Some(before) = campaign.send_before
        && SystemTime::now() >= before
    {
        println!(
            "too late: {} says send_before = {}; nothing more is sent (those never attempted \
             count as expired in `missive status`)",
            campaign.path.display(),
            timestamp(before)
        );
    }
}

/// What `send_before` cut off in this run, if anything.
pub(super) fn print_expired(report: &RunReport, campaign: &Campaign) {
    if let (Some(before), expired @ 1..) = (campaign.send_before, report.counts.expired) {
        println!(
            "send_before ({}) has passed: {expired} message(s) expired, never to be sent",
            timestamp(before)
        );
    }
}
