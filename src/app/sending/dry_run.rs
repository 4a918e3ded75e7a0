//! The dry run's wiring, where it differs from a real send: it delivers to `--smtp`, else to
//! the campaign's mailcatcher if one listens, else to an embedded capture server writing `.eml`
//! files (`crate::capture`); with no login, no fallback and no quotas; and it records into a
//! log kept in memory, so the real send log is never touched. Everything else is the real
//! send's path, so that a rehearsal shows what the send would do.

use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::campaign::Campaign;
use crate::capture::CaptureServer;
use crate::ratelimit::Limits;
use crate::send::Route;
use crate::smtp::{Endpoint, Relay, RelayName};

/// The rehearsal's route, to the one server it delivers to, and the capture server when it is
/// that one (it stops when dropped).
pub(super) async fn route(
    campaign: &Campaign,
    requested: Option<&Endpoint>,
) -> anyhow::Result<(Route, Option<CaptureServer>)> {
    let (endpoint, capture) = target(campaign, requested).await?;
    let primary = Relay::new(
        RelayName::Primary,
        &endpoint,
        None,
        None,
        campaign.smtp_timeout,
    )?;
    Ok((
        Route::new(primary, None, campaign.failover.clone()),
        capture,
    ))
}

/// The pace of a rehearsal: the run's rate and burst, without the quotas, which protect the
/// real world; a rehearsal to a local catcher spends none of them.
pub(super) fn pace(limits: &Limits) -> Limits {
    Limits {
        rate: limits.rate,
        burst: limits.burst,
        ..Limits::default()
    }
}

/// Where the capture server wrote what it received.
pub(super) fn print_captured(capture: &CaptureServer, campaign: &Campaign) {
    println!(
        "dry run: no mailcatcher at {}; {} message(s) captured as .eml files in {}",
        campaign.dry_run_smtp,
        capture.received(),
        capture.outbox().display()
    );
}

/// Where a dry run delivers: `--smtp`, else the campaign's mailcatcher if one listens, else an
/// embedded capture server writing into the outbox.
async fn target(
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
