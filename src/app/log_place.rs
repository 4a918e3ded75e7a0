//! Where a campaign's send log is: a file (the default, beside the campaign file) or a
//! PostgreSQL database (`--log postgres://…`, or `send_log` in the campaign file), and how
//! `send` opens it under the campaign's claim and `status` reads it. The engine sees neither:
//! only the [`SendLog`] trait and the [`Replay`].
//!
//! Which log is used: `--log`, else the campaign file's `send_log`, else the one the campaign
//! recorded as its own (`--new-log` may have moved it), else the default file. A database
//! log's password is never here: only in `PGPASSWORD` (a URL holding one is refused unshown).

use std::path::PathBuf;

use crate::campaign::Campaign;
use crate::sendlog::{CampaignClaim, FileLog, PgLog, PgTarget, Replay, SendLog, SendLogError};

use super::Options;

/// A campaign's send log, by where it lives.
#[derive(Debug)]
pub(super) enum LogPlace {
    File(PathBuf),
    Database(Box<PgTarget>),
}

impl LogPlace {
    /// `text` as a database URL (completed by the libpq variables) or a file path.
    fn parse(text: &str) -> Result<LogPlace, SendLogError> {
        if PgTarget::is_url(text) {
            PgTarget::from_env(text).map(|target| LogPlace::Database(Box::new(target)))
        } else {
            Ok(LogPlace::File(text.into()))
        }
    }

    /// The name the campaign's state records for this log: a file's canonical path, a
    /// database's URL (which holds no password).
    pub(super) fn name(&self) -> String {
        match self {
            LogPlace::File(path) => FileLog::locate(path),
            LogPlace::Database(target) => target.to_string(),
        }
    }

    /// Holds the campaign (a file log; a database's is shared), checks that this is the log it
    /// has been sending with (or that
    /// `new_log` says another is meant), opens the log and remembers it as the campaign's. A
    /// database's other senders see this one's `letter`.
    pub(super) fn open(
        &self,
        campaign: &Campaign,
        new_log: bool,
        letter: &str,
    ) -> anyhow::Result<(Box<dyn SendLog>, Replay, CampaignClaim)> {
        let dir = campaign.dir();
        // A campaign sent before campaigns remembered their log was using the default one.
        let default_log = campaign.default_log_path();
        let earlier = default_log.exists().then(|| FileLog::locate(&default_log));
        let name = self.name();
        match self {
            LogPlace::File(path) => {
                let mut claim = CampaignClaim::take(dir, &campaign.id, earlier)?;
                claim.check(&name, new_log)?;
                let (log, replay) = FileLog::open(path, &campaign.id)?;
                claim.remember(&name)?;
                Ok((Box::new(log), replay, claim))
            }
            LogPlace::Database(target) => {
                // Several senders share a database log: the database divides the people
                // between them, so no lock of this machine's holds the campaign.
                let mut claim = CampaignClaim::take_shared(dir, &campaign.id, earlier)?;
                claim.check_database(&name, new_log)?;
                let (log, replay) = PgLog::open_sending(target, &campaign.id, letter)?;
                claim.check_row(&name, log.campaign_uid(), new_log)?;
                claim.remember_database(&name, log.campaign_uid())?;
                Ok((Box::new(log), replay, claim))
            }
        }
    }

    /// The campaign's records, read without holding anything (`status`, beside a send), and,
    /// for a database shared by several senders, how many are active now.
    pub(super) fn read(&self, campaign: &Campaign) -> Result<(Replay, Option<u64>), SendLogError> {
        match self {
            LogPlace::File(path) => Ok((FileLog::read(path, &campaign.id)?, None)),
            LogPlace::Database(target) => {
                PgLog::read(target, &campaign.id).map(|(replay, active)| (replay, Some(active)))
            }
        }
    }
}

impl std::fmt::Display for LogPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogPlace::File(path) => write!(f, "{}", path.display()),
            LogPlace::Database(target) => write!(f, "{target}"),
        }
    }
}

/// The send log a command uses (see the module's paragraph), and the one the campaign recorded
/// as its own.
pub(super) fn send_log(
    campaign: &Campaign,
    options: &Options,
) -> anyhow::Result<(LogPlace, Option<String>)> {
    let remembered = CampaignClaim::peek(campaign.dir(), &campaign.id)?;
    let place = match (&options.log, &campaign.send_log, &remembered) {
        (Some(given), _, _) => match given.to_str() {
            Some(text) => LogPlace::parse(text)?,
            None => LogPlace::File(given.clone()),
        },
        (None, Some(configured), _) => LogPlace::parse(configured)?,
        (None, None, Some(in_use)) => LogPlace::parse(in_use)?,
        (None, None, None) => LogPlace::File(campaign.default_log_path()),
    };
    Ok((place, remembered))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::app::Command;

    fn campaign(extra: &str) -> Result<Campaign, crate::campaign::CampaignError> {
        let text = format!(
            "id = \"t1\"\nsubject = \"s\"\nfrom = \"dons@example.org\"\nlanguage = \"fr\"\n\
             preheader = \"p\"\nletter = \"l.md\"\nrecipients = \"r.csv\"\n{extra}"
        );
        Campaign::parse(Path::new("/nonexistent/c/campaign.toml"), &text)
    }

    fn place(campaign: &Campaign, log: Option<&str>) -> String {
        let options = Options {
            campaign: campaign.path.clone(),
            recipients: None,
            smtp: None,
            log: log.map(PathBuf::from),
            command: Command::Status { json: false },
        };
        let (place, remembered) = send_log(campaign, &options).unwrap();
        assert_eq!(remembered, None);
        match place {
            LogPlace::File(path) => format!("file {}", path.display()),
            LogPlace::Database(target) => format!("database {target}"),
        }
    }

    #[test]
    fn the_log_is_the_option_s_else_the_campaign_file_s_else_the_default() {
        let plain = campaign("").unwrap();
        assert_eq!(place(&plain, None), "file /nonexistent/c/t1.sendlog.jsonl");
        let url = "postgres://missive@127.0.0.1:5433/mail";
        assert_eq!(place(&plain, Some(url)), format!("database {url}"));
        let in_file = campaign(&format!("send_log = \"{url}\"\n")).unwrap();
        assert_eq!(place(&in_file, None), format!("database {url}"));
        assert_eq!(place(&in_file, Some("x.jsonl")), "file x.jsonl");
        let relative = campaign("send_log = \"logs/t1.jsonl\"\n").unwrap();
        assert_eq!(place(&relative, None), "file /nonexistent/c/logs/t1.jsonl");
    }

    #[test]
    fn a_password_in_the_campaign_file_s_url_is_refused_at_its_line_unshown() {
        let err = campaign("send_log = \"postgres://missive:hunter22@db.example.org/mail\"\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter22"), "{err}");
        assert!(
            err.contains("PGPASSWORD") && err.contains("send_log"),
            "{err}"
        );
        assert!(err.contains(":8"), "{err}");
    }
}
