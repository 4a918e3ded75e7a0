//! The send log's tables, made and migrated by missive itself, and a campaign's row in them.
//!
//! Everything lives in the schema `missive`: `schema_version` (one row: the version of the
//! tables and the missive that made it), `campaigns` (one row per campaign id, with a `uid`
//! drawn when the row is made), `records` (the log's records, keyed by campaign and in the
//! order they were written), and since version 2 `people` (each person's latest state, kept in
//! step with `records` in the same transaction, and who holds them) and `senders` (every
//! `send` that opened a campaign, and until when its lease runs, by the database's clock), and
//! since version 3 `permits` (what the campaign's pace and quotas granted, by second; see
//! `senders` for the senders' rows), and since version 5 each sender's letter in its row.
//! Migrations only ever go forward, one version at a time,
//! inside one transaction under an advisory lock, so two missives starting at once migrate
//! once. A missive that finds a newer version than it knows refuses to touch the tables.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::errors::database_error;
use crate::sendlog::SendLogError;

/// The first key of every advisory lock missive takes ("misv"); the second is 0 for migrating
/// and a campaign's row id for fencing off missives older than schema 2 (see [`fence`]).
pub(super) const LOCK_CLASS: i32 = 0x6d69_7376;

/// Each migration takes the tables from the version before it to its own (the first from
/// none): append a new one for each change, never edit a published one.
const MIGRATIONS: [&str; 5] = [
    r"
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
",
    // Several senders: each person's state (the claim), and the senders' leases. The state of
    // a campaign already under way is folded from its records: a withdrawn attempt cancels the
    // attempt just before it; then the latest record left says where the person stands (an
    // attempt: in doubt, held by nobody).
    r"
    CREATE TABLE missive.senders (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        campaign integer NOT NULL REFERENCES missive.campaigns (id),
        host text NOT NULL,
        pid integer NOT NULL,
        started timestamptz NOT NULL DEFAULT now(),
        lease_until timestamptz NOT NULL
    );
    CREATE INDEX senders_by_campaign ON missive.senders (campaign, lease_until);
    CREATE TABLE missive.people (
        campaign integer NOT NULL REFERENCES missive.campaigns (id),
        rcpt text NOT NULL,
        status text NOT NULL
            CHECK (status IN ('attempt', 'sent', 'deferred', 'failed', 'withdrawn')),
        message_id text NOT NULL,
        owner bigint,
        attempts integer NOT NULL DEFAULT 0,
        first_attempt timestamptz,
        last_attempt timestamptz,
        before text,
        retry_at timestamptz,
        letter text,
        reply text,
        via text,
        PRIMARY KEY (campaign, rcpt)
    );
    INSERT INTO missive.people
        (campaign, rcpt, status, message_id, attempts, first_attempt, last_attempt, retry_at,
         letter, reply, via)
    SELECT campaign, rcpt,
           CASE WHEN bool_or(event = 'sent') THEN 'sent'
                WHEN bool_or(event = 'failed') THEN 'failed'
                ELSE coalesce((array_agg(event ORDER BY seq DESC) FILTER (WHERE kept))[1],
                              'withdrawn') END,
           (array_agg(message_id ORDER BY seq DESC))[1],
           count(*) FILTER (WHERE event = 'attempt' AND kept),
           min(at) FILTER (WHERE event = 'attempt' AND kept),
           max(at) FILTER (WHERE event = 'attempt' AND kept),
           -- A withdrawn attempt leaves a deferred person due (the file log's replay too).
           CASE WHEN (array_agg(event ORDER BY seq DESC))[1] <> 'withdrawn'
                THEN (array_agg(retry_at ORDER BY seq DESC) FILTER (WHERE kept))[1] END,
           (array_agg(letter ORDER BY seq DESC) FILTER (WHERE event = 'attempt' AND kept))[1],
           (array_agg(reply ORDER BY seq DESC) FILTER (WHERE kept AND reply IS NOT NULL))[1],
           (array_agg(via ORDER BY seq DESC) FILTER (WHERE event = 'sent'))[1]
    FROM (
        SELECT *, event <> 'withdrawn' AND coalesce(lead(event) OVER person, '') <> 'withdrawn'
                  AS kept
        FROM missive.records
        WINDOW person AS (PARTITION BY campaign, rcpt ORDER BY seq)
    ) AS folded
    GROUP BY campaign, rcpt;
",
    // Permits granted to the campaign's senders, by second of the database's clock: the
    // campaign's pace and quotas are kept here, for all its senders together (see `permits`).
    r"
    CREATE TABLE missive.permits (
        campaign integer NOT NULL REFERENCES missive.campaigns (id),
        second bigint NOT NULL,
        granted integer NOT NULL,
        PRIMARY KEY (campaign, second)
    );
",
    // Lighter writes. A foreign key checks its campaign's row for every record and person
    // written, a sixth of the database's work for a batch; missive alone writes these tables
    // and never deletes a campaign. Room left in each page of people lets a person's outcome
    // be written beside their claim (a heap-only update) rather than into the index as well.
    r"
    ALTER TABLE missive.records DROP CONSTRAINT IF EXISTS records_campaign_fkey;
    ALTER TABLE missive.people DROP CONSTRAINT IF EXISTS people_campaign_fkey;
    ALTER TABLE missive.people SET (fillfactor = 70);
",
    // Each sender's letter (the fingerprint of everything its messages share): senders
    // started together on a new campaign see no attempts yet, only each other's rows, and a
    // host left with another letter must not mail half the campaign with it.
    r"
    ALTER TABLE missive.senders ADD COLUMN IF NOT EXISTS letter text;
",
];

/// How long a migration waits for the tables it changes before it gives up.
const MIGRATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

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
    // A migration takes its tables alone, and waits for every transaction on them to end; the
    // senders' statements that come meanwhile wait behind it. One sender cut off in the middle
    // of a transaction (which the database ends only after half a lease) would hold them all:
    // give up instead, as a batch crossed by another sender's (75: run again).
    transaction
        .batch_execute(&format!(
            "SET LOCAL lock_timeout = '{}ms'",
            MIGRATION_WAIT.as_millis()
        ))
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
/// only: nothing is made). Another version is refused: a newer one would be misread, an older
/// one lacks tables that only a send makes.
pub(super) async fn readable(client: &Client, log: &str) -> Result<bool, SendLogError> {
    match read_version(client).await {
        Ok(Some((found, made_by))) if found > VERSION => Err(newer(log, found, made_by)),
        Ok(Some((found, _))) if found < VERSION => Err(SendLogError::OlderSchema {
            log: log.to_owned(),
            found,
            known: VERSION,
        }),
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

/// Keeps a missive older than schema 2 from sending the campaign beside this one: it writes
/// records but claims nobody, so the senders here would not see whom it mails. Such a missive
/// holds the campaign's advisory lock alone (exclusive) while it sends; senders of this
/// version share it, for their connection's life. So either kind waits for the other to end
/// (`Locked`, exit 75), and any number of this kind send together.
pub(super) async fn fence(
    client: &Client,
    row: &CampaignRow,
    log: &str,
    campaign: &str,
) -> Result<(), SendLogError> {
    let taken: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock_shared($1, $2)",
            &[&LOCK_CLASS, &row.id],
        )
        .await
        .map_err(|e| database_error(log, &e))?
        .get(0);
    if taken {
        return Ok(());
    }
    Err(SendLogError::Locked {
        path: format!("{log} (campaign {campaign})").into(),
        holder: " (a `missive log import` or `export` of it, or a missive older than this one, \
                  which cannot share a campaign)"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_class_spells_misv_and_versions_count_migrations() {
        assert_eq!(&LOCK_CLASS.to_be_bytes(), b"misv");
        assert_eq!(VERSION, 5);
    }
}
