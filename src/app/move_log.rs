//! `log import` and `log export`: moving a campaign's send log in flight, from a file into
//! PostgreSQL (so that several senders can take it over) and back, without mailing anyone
//! twice.
//!
//! An import holds the campaign and the file's lock (a `send` at work on the file makes it wait:
//! exit 75), copies the records, and then records the database as the campaign's log in
//! `<id>.state.json`, so that a later `send` without `--log` uses it and one with the old file
//! is refused. The people's counts are compared before and after a copy; a difference is an
//! error. An export writes a new file (never over an existing one) and changes nothing else:
//! going back is `send --log FILE --new-log`, once the senders on the database have stopped.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::log_place::LogPlace;
use super::{Exit, Loaded, Options, Unsendable, send_log};
use crate::sendlog::{
    CampaignClaim, FileLog, Header, Imported, PgLog, PgTarget, SendLogError, timestamp,
};

/// Copies the campaign's file log (`from`, else the one it has been using) into the database
/// at `to`, and makes the database the campaign's log.
pub(super) fn import(
    loaded: &Loaded,
    options: &Options,
    from: Option<&Path>,
    to: &str,
) -> anyhow::Result<Exit> {
    let campaign = &loaded.campaign;
    let target = database(to, "--to")?;
    let file = match from {
        Some(file) => file.to_owned(),
        None => match send_log(campaign, options)?.0 {
            LogPlace::File(file) => file,
            LogPlace::Database(target) => {
                return Err(unsendable(format!(
                    "campaign {} already sends with the database log {target}: name the file to \
                 import with --from FILE",
                    campaign.id
                )));
            }
        },
    };
    if !file.try_exists().unwrap_or(true) {
        return Err(unsendable(format!("{}: no send log there", file.display())));
    }
    let default_log = campaign.default_log_path();
    let earlier = default_log.exists().then(|| FileLog::locate(&default_log));
    let mut claim = CampaignClaim::take(campaign.dir(), &campaign.id, earlier)?;
    let (file_name, database_name) = (FileLog::locate(&file), target.to_string());
    if let Some(in_use) = claim.log_in_use()
        && in_use != file_name
        && in_use != database_name
    {
        return Err(unsendable(format!(
            "campaign {} has been sending with the send log {in_use}, not {}: import that one",
            campaign.id,
            file.display()
        )));
    }
    let (log, before) = FileLog::open(&file, &campaign.id)?;
    let records = log.records()?;
    let (imported, uid) = PgLog::import(&target, &campaign.id, records)
        .with_context(|| format!("cannot import {} into {target}", file.display()))?;
    claim.remember_database(&database_name, &uid)?;
    drop(log);
    let (after, _) = PgLog::read(&target, &campaign.id)?;
    // A file imported before begins the database's history, which senders may have taken
    // further since: only a copy made now must list what the file lists.
    let copied = matches!(imported, Imported::Records(_));
    if copied && before.counts() != after.counts() {
        anyhow::bail!(
            "after importing {} into {target}, the database lists (sent, failed, deferred, in \
             doubt, withdrawn) {:?} where the file listed {:?}: a bug of missive's; do not \
             send until it is understood",
            file.display(),
            after.counts(),
            before.counts()
        );
    }
    match imported {
        Imported::Records(records) => println!(
            "imported {records} records of {} people from {} into {target}: the campaign now \
             sends with {target} (the file is kept, and no longer used)",
            before.len(),
            file.display()
        ),
        Imported::AlreadyThere => println!(
            "{} is already in {target}: nothing written; the campaign sends with {target}",
            file.display()
        ),
    }
    Ok(Exit::Done)
}

/// Writes the campaign's database log (`from`, else the one it has been using) into a new
/// file log at `to`.
pub(super) fn export(
    loaded: &Loaded,
    options: &Options,
    from: Option<&str>,
    to: &Path,
) -> anyhow::Result<Exit> {
    let campaign = &loaded.campaign;
    let target = match from {
        Some(url) => database(url, "--from")?,
        None => match send_log(campaign, options)?.0 {
            LogPlace::Database(target) => *target,
            LogPlace::File(file) => {
                return Err(unsendable(format!(
                    "campaign {} sends with the file log {}: name the database to export with \
                 --from postgres://…",
                    campaign.id,
                    file.display()
                )));
            }
        },
    };
    if std::fs::metadata(to).is_ok_and(|meta| meta.len() > 0) {
        return Err(unsendable(format!(
            "{}: a file is there already; export into a new one",
            to.display()
        )));
    }
    let staging = PathBuf::from(format!("{}.partial", to.display()));
    let io = |source| SendLogError::Io {
        path: staging.clone(),
        source,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(&staging).map_err(io)?);
    let header = serde_json::to_string(&Header::new(&campaign.id)).expect("a header serializes");
    writeln!(out, "{header}").map_err(io)?;
    let exported = PgLog::export(&target, &campaign.id, |record| {
        let line = serde_json::to_string(&record).expect("a record serializes");
        writeln!(out, "{line}").map_err(io)
    });
    let count = match exported {
        Ok(count) => count,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(&staging);
            let context = format!("cannot export {target} into {}", to.display());
            return Err(anyhow::Error::new(e).context(context));
        }
    };
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&staging, to).map_err(io)?;
    let written = FileLog::read(to, &campaign.id)?;
    let (there, _) = PgLog::read(&target, &campaign.id)?;
    if written.counts() != there.counts() {
        anyhow::bail!(
            "{} lists (sent, failed, deferred, in doubt, withdrawn) {:?} where {target} lists \
             {:?}: a bug of missive's; do not send with the file",
            to.display(),
            written.counts(),
            there.counts()
        );
    }
    println!(
        "exported {count} records ({} people) from {target} into {}, written {}; to send \
         with it: missive send --log {} --new-log (once no sender uses {target})",
        written.len(),
        to.display(),
        timestamp(std::time::SystemTime::now()),
        to.display()
    );
    Ok(Exit::Done)
}

fn database(url: &str, option: &str) -> anyhow::Result<PgTarget> {
    if !PgTarget::is_url(url) {
        return Err(unsendable(format!(
            "{option} {url}: not a PostgreSQL URL (postgres://user@host:port/db)"
        )));
    }
    Ok(PgTarget::from_env(url)?)
}

fn unsendable(problem: String) -> anyhow::Error {
    anyhow::Error::new(Unsendable).context(problem)
}
