//! The send log's tables, made and migrated by missive itself, and a campaign's row in them.
//!
//! Everything lives in the schema `missive`: `schema_version` (one row: the version of the
//! tables and the missive that made it), `campaigns` (one row per campaign id, with a `uid`
//! drawn when the row is made) and `records` (the log's records, keyed by campaign and in the
//! order they were written). Migrations only ever go forward, one version at a time, inside one
//! transaction under an advisory lock, so two missives starting at once migrate once. A missive
//! that finds a newer version than it knows refuses to touch the tables.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::errors::database_error;
use crate::sendlog::SendLogError;

/// The first key of every advisory lock missive takes ("misv"); the second is 0 for migrating
/// and a campaign's row id for holding that campaign.
pub(super) const LOCK_CLASS: i32 = 0x6d69_7376;

/// Each migration takes the tables from the version before it to its own (the first from
/// none): append a new one for each change, never edit a published one.
const MIGRATIONS: [&str; 1] = [r"
    CREATE TABLE missive.campaigns (
        id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL UNIQUE,
        uid text NOT NULL DEFAULT gen_random_uuid()::text,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by text NOT NULL
            DEFAULT current_user || coalesce(' from ' || host(inet_client_addr()), '')
    );
    CREATE TABLE missive.records (
        campaign integer NOT NULL REFERENCES missive.campaigns (id),
        seq bigint GENERATED ALWAYS AS IDENTITY,
        at timestamptz,
        event text NOT NULL
            CHECK (event IN ('attempt', 'sent', 'deferred', 'failed', 'withdrawn')),
        rcpt text NOT NULL,
        message_id text NOT NULL,
        letter text,
        reply text,
        retry_at timestamptz,
        via text,
        PRIMARY KEY (campaign, seq)
    );
"];

/// The version of the tables this missive makes and reads.
pub(super) const VERSION: i32 = MIGRATIONS.len() as i32;

/// The campaign's row: who made it, and the identity drawn then.
#[derive(Debug, Clone)]
pub(super) struct CampaignRow {
    pub(super) id: i32,
    pub(super) uid: String,
}

/// Brings the tables to [`VERSION`], making them if the database has none; refuses a newer
/// version. A database already at this version is only read (no right to create is needed).
pub(super) async fn migrate(client: &mut Client, log: &str) -> Result<(), SendLogError> {
    match read_version(client).await {
        Ok(Some((found, made_by))) if found > VERSION => return Err(newer(log, found, made_by)),
        Ok(Some((found, _))) if found == VERSION => return Ok(()),
        Ok(_) => {}
        Err(e)
            if matches!(
                e.code(),
                Some(&SqlState::UNDEFINED_TABLE | &SqlState::INVALID_SCHEMA_NAME)
            ) => {}
        Err(e) => return Err(database_error(log, &e)),
    }
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    let transaction = client.transaction().await.map_err(error)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_CLASS])
        .await
        .map_err(error)?;
    transaction
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS missive;
             CREATE TABLE IF NOT EXISTS missive.schema_version (
                 single boolean PRIMARY KEY DEFAULT true CHECK (single),
                 version integer NOT NULL,
                 made_by text NOT NULL,
                 migrated_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await
        .map_err(error)?;
    // Read again under the lock: another missive may have migrated meanwhile.
    let found = match read_version(&transaction).await.map_err(error)? {
        Some((found, made_by)) if found > VERSION => return Err(newer(log, found, made_by)),
        Some((found, _)) => found,
        None => 0,
    };
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tracing::info!(log, version = index + 1, "migrating the send log's tables");
        transaction.batch_execute(migration).await.map_err(error)?;
    }
    transaction
        .execute(
            "INSERT INTO missive.schema_version (version, made_by) VALUES ($1, $2)
             ON CONFLICT (single) DO UPDATE
             SET version = excluded.version, made_by = excluded.made_by, migrated_at = now()",
            &[&VERSION, &env!("CARGO_PKG_VERSION")],
        )
        .await
        .map_err(error)?;
    transaction.commit().await.map_err(error)
}

async fn read_version(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Option<(i32, String)>, tokio_postgres::Error> {
    let row = client
        .query_opt("SELECT version, made_by FROM missive.schema_version", &[])
        .await?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

fn newer(log: &str, found: i32, made_by: String) -> SendLogError {
    SendLogError::NewerSchema {
        log: log.to_owned(),
        found,
        made_by,
        known: VERSION,
        ours: env!("CARGO_PKG_VERSION"),
    }
}

/// The row of `campaign`, made on its first use.
pub(super) async fn campaign_row(
    client: &Client,
    campaign: &str,
    log: &str,
) -> Result<CampaignRow, SendLogError> {
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    client
        .execute(
            "INSERT INTO missive.campaigns (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            &[&campaign],
        )
        .await
        .map_err(error)?;
    let row = client
        .query_one(
            "SELECT id, uid FROM missive.campaigns WHERE name = $1",
            &[&campaign],
        )
        .await
        .map_err(error)?;
    Ok(CampaignRow {
        id: row.get(0),
        uid: row.get(1),
    })
}

/// Whether the database holds missive's tables at a version this missive reads (for reading
/// only: nothing is made). A newer version is refused.
pub(super) async fn readable(client: &Client, log: &str) -> Result<bool, SendLogError> {
    match read_version(client).await {
        Ok(Some((found, made_by))) if found > VERSION => Err(newer(log, found, made_by)),
        Ok(found) => Ok(found.is_some()),
        Err(e)
            if matches!(
                e.code(),
                Some(&SqlState::UNDEFINED_TABLE | &SqlState::INVALID_SCHEMA_NAME)
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(database_error(log, &e)),
    }
}

/// The row id of `campaign`, if it has one.
pub(super) async fn find_campaign(
    client: &Client,
    campaign: &str,
    log: &str,
) -> Result<Option<i32>, SendLogError> {
    let row = client
        .query_opt(
            "SELECT id FROM missive.campaigns WHERE name = $1",
            &[&campaign],
        )
        .await
        .map_err(|e| database_error(log, &e))?;
    Ok(row.map(|row| row.get(0)))
}

/// Holds `row`'s campaign for this connection's life, as the file log's lock holds its file:
/// until several senders divide a campaign between them, two would mail everyone twice. The
/// database lets go when the connection ends, however the process dies.
pub(super) async fn hold_campaign(
    client: &Client,
    row: &CampaignRow,
    log: &str,
    campaign: &str,
) -> Result<(), SendLogError> {
    let error = |e: tokio_postgres::Error| database_error(log, &e);
    let taken: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock($1, $2)",
            &[&LOCK_CLASS, &row.id],
        )
        .await
        .map_err(error)?
        .get(0);
    if taken {
        return Ok(());
    }
    let holder = client
        .query_opt(
            "SELECT a.application_name, coalesce(host(a.client_addr), 'a local socket')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.classid::integer = $1 AND l.objid::integer = $2 AND l.objsubid = 2",
            &[&LOCK_CLASS, &row.id],
        )
        .await
        .ok()
        .flatten()
        .map(|row| {
            format!(
                " ({}, from {})",
                row.get::<_, &str>(0),
                row.get::<_, &str>(1)
            )
        })
        .unwrap_or_default();
    Err(SendLogError::Locked {
        path: format!("{log} (campaign {campaign})").into(),
        holder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_class_spells_misv_and_versions_count_migrations() {
        assert_eq!(&LOCK_CLASS.to_be_bytes(), b"misv");
        assert_eq!(VERSION, 1);
    }
}
