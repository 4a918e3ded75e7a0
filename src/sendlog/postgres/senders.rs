//! The senders of a campaign, in `missive.senders`: each `send` registers with a lease, renews
//! it while it runs and ends it when it leaves; the leases of this machine's dead senders are
//! ended at once, so that a sender restarted here takes over what they left in doubt.

use tokio_postgres::Client;

use super::errors::database_error;
use crate::sendlog::SendLogError;

/// Registers this sender for the campaign `campaign`, sending `letter` (a fingerprint; none
/// for an import), with a lease of `lease` from now by the database's clock: its id.
pub(super) async fn register(
    client: &Client,
    campaign: i32,
    lease: std::time::Duration,
    letter: Option<&str>,
    log: &str,
) -> Result<i64, SendLogError> {
    // `MISSIVE_HOST` names the machine where host names do not tell machines apart.
    let host = std::env::var("MISSIVE_HOST")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let pid = i32::try_from(std::process::id()).unwrap_or_default();
    end_leases_of_the_dead(client, campaign, &host, pid, log).await?;
    let row = client
        .query_one(
            "INSERT INTO missive.senders (campaign, host, pid, lease_until, letter)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)
             RETURNING id",
            &[&campaign, &host, &pid, &lease.as_secs_f64(), &letter],
        )
        .await
        .map_err(|e| database_error(log, &e))?;
    Ok(row.get(0))
}

/// Ends the leases of this campaign's senders on this host whose process is gone (a `kill -9`,
/// a crash, a database lost): a sender restarted on the same machine takes over at once what
/// they left in doubt, as with the file log, instead of waiting for their leases to run out.
/// Only where `/proc` tells (Linux); a process id taken since by another process (this one
/// included) reads as alive, which only means waiting for the lease. Host names must tell
/// machines apart.
async fn end_leases_of_the_dead(
    client: &Client,
    campaign: i32,
    host: &str,
    own_pid: i32,
    log: &str,
) -> Result<(), SendLogError> {
    if !std::path::Path::new("/proc/self").exists() {
        return Ok(());
    }
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    let live = client
        .query(
            "SELECT id, pid FROM missive.senders
             WHERE campaign = $1 AND host = $2 AND lease_until > now()",
            &[&campaign, &host],
        )
        .await
        .map_err(error)?;
    let dead: Vec<i64> = live
        .iter()
        .filter(|row| {
            let pid: i32 = row.get(1);
            pid != own_pid && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .map(|row| row.get(0))
        .collect();
    if !dead.is_empty() {
        tracing::info!(log, senders = ?dead, "ending the leases of this machine's dead senders");
        client
            .execute(
                "UPDATE missive.senders SET lease_until = now() WHERE id = ANY($1)",
                &[&dead],
            )
            .await
            .map_err(error)?;
    }
    Ok(())
}

/// Extends the lease of `sender` to `lease` from now (the database's clock); a lease of zero
/// ends it (a sender leaving cleanly lets its in-doubt attempts be taken over at once).
/// Whether it was still live: a lease that ran out or was ended stays so, even for a renewal
/// sent before the end and landing after it (the clock is read when the row is, not when the
/// statement began), since others may have taken its people over.
pub(super) async fn renew(
    client: &Client,
    sender: i64,
    lease: std::time::Duration,
) -> Result<bool, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE missive.senders SET lease_until = now() + make_interval(secs => $2)
             WHERE id = $1 AND lease_until > clock_timestamp()",
            &[&sender, &lease.as_secs_f64()],
        )
        .await
        .map(|renewed| renewed == 1)
}

/// How many senders of `campaign` hold a live lease.
pub(super) async fn active_senders(
    client: &Client,
    campaign: i32,
    log: &str,
) -> Result<i64, SendLogError> {
    let row = client
        .query_one(
            "SELECT count(*) FROM missive.senders WHERE campaign = $1 AND lease_until > now()",
            &[&campaign],
        )
        .await
        .map_err(|e| database_error(log, &e))?;
    Ok(row.get(0))
}

/// The letters the campaign's other senders with a live lease are sending. Each sender
/// registers before it asks: of two started together, the second to register sees the first.
pub(super) async fn letters_elsewhere(
    client: &Client,
    campaign: i32,
    sender: i64,
    log: &str,
) -> Result<std::collections::BTreeSet<String>, SendLogError> {
    let rows = client
        .query(
            "SELECT DISTINCT letter FROM missive.senders
             WHERE campaign = $1 AND id <> $2 AND lease_until > now() AND letter IS NOT NULL",
            &[&campaign, &sender],
        )
        .await
        .map_err(|e| database_error(log, &e))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
