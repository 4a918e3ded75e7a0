//! Which send log a campaign uses, and the campaign's lock.
//!
//! A log only knows the people it lists: a campaign started again with another log (a typo in
//! `--log`, a new folder) would find nobody done and mail everyone a second time. So the
//! campaign remembers its log: a real send records the log's canonical place in
//! `<id>.state.json` beside `campaign.toml`, and a later send with another log is refused unless
//! the user says `--new-log`. The campaign's lock, `<id>.lock`, is held for the whole run, so
//! that two runs with different logs never send at once (each log also has its own lock).
//! Dry runs take neither: they never touch the real log.
//!
//! A log in a database is remembered by its URL (never holding a password) and by the `uid` the
//! campaign's row drew there: a database replaced or restored from an older backup, or another
//! campaign that took the id, answers with another row, which lists nobody this campaign
//! mailed, so it is refused as a lost log file is.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::lock::take_lock;
use super::{FileLog, SendLogError, timestamp};

/// What `<id>.state.json` holds (one JSON object, for people too).
#[derive(Debug, Serialize, Deserialize)]
struct State {
    campaign: String,
    /// The log the campaign sends with, as [`super::FileLog::locate`] names it.
    log: String,
    /// When that log became the campaign's.
    since: String,
    /// For a log in a database: the identity of the campaign's row there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
}

/// A campaign held for one run, knowing which log it has been using.
#[derive(Debug)]
pub struct CampaignClaim {
    campaign: String,
    state_path: PathBuf,
    in_use: Option<String>,
    /// The row of the database log in use, when the log is one.
    in_use_uid: Option<String>,
    /// The campaign's lock, its state and the state's staging copy, and the one log name whose
    /// lock would be the campaign's: none of them can be the log.
    own_files: [String; 4],
    /// Held for the life of the run; the OS releases it if the process dies. None for a log
    /// in a database, which several senders share (they divide the people between them).
    _lock: Option<File>,
}

impl CampaignClaim {
    /// Takes the lock of `campaign`, whose file is in `dir`, and reads which log it has been
    /// using. `earlier` is the log a campaign that has no state yet was using (one sent before
    /// campaigns remembered their log). Another run holding the campaign: `CampaignLocked`.
    pub fn take(
        dir: &Path,
        campaign: &str,
        earlier: Option<String>,
    ) -> Result<CampaignClaim, SendLogError> {
        Self::take_as(dir, campaign, earlier, true)
    }

    /// As [`CampaignClaim::take`], but without the campaign's lock: for a log in a database,
    /// which any number of senders share, on this machine or others.
    pub fn take_shared(
        dir: &Path,
        campaign: &str,
        earlier: Option<String>,
    ) -> Result<CampaignClaim, SendLogError> {
        Self::take_as(dir, campaign, earlier, false)
    }

    fn take_as(
        dir: &Path,
        campaign: &str,
        earlier: Option<String>,
        locked: bool,
    ) -> Result<CampaignClaim, SendLogError> {
        let lock_path = dir.join(format!("{campaign}.lock"));
        let lock = locked
            .then(|| {
                take_lock(&lock_path, |holder| SendLogError::CampaignLocked {
                    campaign: campaign.to_owned(),
                    path: lock_path.clone(),
                    holder,
                })
            })
            .transpose()?;
        let state_path = Self::state_path(dir, campaign);
        let (in_use, in_use_uid) = match read_state(&state_path)? {
            Some(state) => (Some(state.log), state.uid),
            None => (earlier, None),
        };
        let own_files = [
            FileLog::locate(&lock_path),
            FileLog::locate(&state_path),
            FileLog::locate(&staging_path(&state_path)),
            FileLog::locate(&dir.join(campaign)),
        ];
        Ok(CampaignClaim {
            campaign: campaign.to_owned(),
            state_path,
            in_use,
            in_use_uid,
            own_files,
            _lock: lock,
        })
    }

    /// Where `campaign` (whose file is in `dir`) records the log it sends with.
    pub fn state_path(dir: &Path, campaign: &str) -> PathBuf {
        dir.join(format!("{campaign}.state.json"))
    }

    /// The log the campaign has been sending with, if any.
    pub fn log_in_use(&self) -> Option<&str> {
        self.in_use.as_deref()
    }

    /// Refuses `log` (as [`super::FileLog::locate`] names it) when the campaign has been
    /// sending with another, unless `new_log` says the other one is meant.
    pub fn check(&self, log: &str, new_log: bool) -> Result<(), SendLogError> {
        if self.own_files.iter().any(|own| own == log) {
            return Err(SendLogError::NotALog {
                path: log.into(),
                problem: "this name is the campaign's own (its lock, or its record of its send \
                          log, or the name whose lock would be the campaign's): give the send \
                          log another name"
                    .into(),
            });
        }
        self.check_other_log(log, new_log)?;
        match &self.in_use {
            _ if new_log => Ok(()),
            // The log is remembered only once it exists: gone or emptied since, a new one
            // would find nobody done.
            Some(in_use) => match std::fs::metadata(in_use) {
                Ok(meta) if meta.len() > 0 => Ok(()),
                Ok(_) => Err(self.lost(in_use, "empty")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(self.lost(in_use, "missing"))
                }
                Err(source) => Err(SendLogError::Io {
                    path: in_use.into(),
                    source,
                }),
            },
            None => Ok(()),
        }
    }

    /// Refuses the database log at `url` (as [`super::PgTarget`] shows it) when the campaign
    /// has been sending with another log, unless `new_log` says this one is meant. Whether it
    /// is the same campaign there is known once it is open: [`CampaignClaim::check_row`].
    pub fn check_database(&self, url: &str, new_log: bool) -> Result<(), SendLogError> {
        self.check_other_log(url, new_log)
    }

    /// Refuses the campaign's row `uid` in the database log at `url` when the campaign
    /// remembers another row there, unless `new_log` says this one is meant.
    pub fn check_row(&self, url: &str, uid: &str, new_log: bool) -> Result<(), SendLogError> {
        match &self.in_use_uid {
            Some(remembered) if remembered != uid && !new_log => {
                Err(SendLogError::OtherCampaignRow {
                    campaign: self.campaign.clone(),
                    log: url.to_owned(),
                    remembered: remembered.clone(),
                    found: uid.to_owned(),
                    state: self.state_path.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    fn check_other_log(&self, log: &str, new_log: bool) -> Result<(), SendLogError> {
        match &self.in_use {
            Some(in_use) if in_use != log && !new_log => Err(SendLogError::OtherLog {
                campaign: self.campaign.clone(),
                in_use: in_use.clone(),
                given: log.to_owned(),
                differs: users_differ(in_use, log).into(),
                state: self.state_path.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn lost(&self, log: &str, problem: &'static str) -> SendLogError {
        SendLogError::LogLost {
            campaign: self.campaign.clone(),
            log: log.to_owned(),
            problem,
            state: self.state_path.clone(),
        }
    }

    /// Records `log` as the campaign's, once it is open: written beside the state file, synced
    /// and renamed into place, so a crash leaves the old state or the new one.
    pub fn remember(&mut self, log: &str) -> Result<(), SendLogError> {
        self.remember_with(log, None)
    }

    /// Records the database log at `url`, and the campaign's row `uid` there, as the
    /// campaign's, as [`CampaignClaim::remember`] does a file.
    pub fn remember_database(&mut self, url: &str, uid: &str) -> Result<(), SendLogError> {
        self.remember_with(url, Some(uid))
    }

    fn remember_with(&mut self, log: &str, uid: Option<&str>) -> Result<(), SendLogError> {
        let unchanged = self.in_use.as_deref() == Some(log) && self.in_use_uid.as_deref() == uid;
        if unchanged && self.state_path.exists() {
            return Ok(());
        }
        let state = State {
            campaign: self.campaign.clone(),
            log: log.to_owned(),
            since: timestamp(SystemTime::now()),
            uid: uid.map(str::to_owned),
        };
        let mut text = serde_json::to_vec(&state).expect("a state serializes");
        text.push(b'\n');
        let mut staging = staging_path(&self.state_path);
        if self._lock.is_none() {
            // Several senders on this machine may write it at once (the same URL and row):
            // each through a staging file of its own.
            staging
                .as_mut_os_string()
                .push(format!(".{}", std::process::id()));
        }
        let io = |source| SendLogError::Io {
            path: self.state_path.clone(),
            source,
        };
        // Under the campaign's lock, or through a staging file of this process's own.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&staging)
            .and_then(|mut file| file.write_all(&text).and_then(|()| file.sync_all()))
            .and_then(|()| std::fs::rename(&staging, &self.state_path))
            .map_err(io)?;
        let folder = match self.state_path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(folder)
            .and_then(|dir| dir.sync_all())
            .map_err(io)?;
        self.in_use = Some(log.to_owned());
        self.in_use_uid = uid.map(str::to_owned);
        Ok(())
    }

    /// The log `campaign` (whose file is in `dir`) has been sending with, read without its lock
    /// (for `status`, which may run beside a send).
    pub fn peek(dir: &Path, campaign: &str) -> Result<Option<String>, SendLogError> {
        let state = read_state(&Self::state_path(dir, campaign))?;
        Ok(state.map(|state| state.log))
    }
}

/// Where the state is written before it is renamed into place.
fn staging_path(state_path: &Path) -> PathBuf {
    state_path.with_extension("json.new")
}

fn read_state(path: &Path) -> Result<Option<State>, SendLogError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SendLogError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| SendLogError::NotALog {
            path: path.to_owned(),
            problem: format!(
                "not missive's record of which send log the campaign uses ({e}); move it aside, \
                 then send with the campaign's log (and --new-log if it is not the one beside \
                 the campaign)"
            ),
        })
}

/// `" (user X, not Y)"` when the URLs `in_use` and `given` name different users: messages mask
/// a URL's login (it may hold a password), which would leave the two looking the same.
fn users_differ(in_use: &str, given: &str) -> String {
    let user = |url: &str| url::Url::parse(url).map(|url| url.username().to_owned());
    match (user(given), user(in_use)) {
        (Ok(given), Ok(in_use)) if given != in_use => {
            let name = |user: String| match user.is_empty() {
                true => "none (PGUSER's)".to_owned(),
                false => format!("`{user}`"),
            };
            format!(" (user {}, not {})", name(given), name(in_use))
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorKind};

    #[test]
    fn another_user_of_the_same_database_is_told_apart_where_logins_are_masked() {
        let dir = tempfile::tempdir().unwrap();
        let ours = "postgres://missive@127.0.0.1:5432/mail";
        let theirs = "postgres://nobody@127.0.0.1:5432/mail";
        let mut claim = CampaignClaim::take_shared(dir.path(), "c", None).unwrap();
        claim.remember_database(ours, "u1").unwrap();
        let claim = CampaignClaim::take_shared(dir.path(), "c", None).unwrap();
        let err = claim.check_database(theirs, false).unwrap_err();
        // As the program prints it: every URL's login masked.
        let shown = crate::smtp::mask_credentials(&err.to_string());
        assert!(shown.contains("(user `nobody`, not `missive`)"), "{shown}");
        let unnamed = "postgres://127.0.0.1:5432/mail";
        let err = claim.check_database(unnamed, false).unwrap_err();
        assert!(
            err.to_string()
                .contains("user none (PGUSER's), not `missive`"),
            "{err}"
        );
        // Files, and URLs of one user: nothing more to say.
        assert_eq!(users_differ("/a/x.jsonl", "/a/y.jsonl"), "");
        assert_eq!(users_differ(ours, "postgres://missive@db:5432/mail"), "");
    }

    #[test]
    fn a_campaign_remembers_its_log_and_refuses_another_unless_told() {
        let dir = tempfile::tempdir().unwrap();
        let log = |name: &str| dir.path().join(name).display().to_string();
        let (a, b) = (log("a.jsonl"), log("b.jsonl"));
        {
            let mut claim = CampaignClaim::take(dir.path(), "c", None).unwrap();
            assert_eq!(claim.log_in_use(), None);
            claim.check(&a, false).unwrap();
            // As `send` does: the log exists (opened) before it is remembered.
            std::fs::write(&a, "{}\n").unwrap();
            claim.remember(&a).unwrap();
        }
        let mut claim = CampaignClaim::take(dir.path(), "c", None).unwrap();
        assert_eq!(claim.log_in_use(), Some(a.as_str()));
        claim.check(&a, false).unwrap();
        let err = claim.check(&b, false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
        assert!(err.to_string().contains(&a), "{err}");
        let own = FileLog::locate(&dir.path().join("c.lock"));
        assert!(claim.check(&own, true).unwrap_err().kind() == ErrorKind::Invalid);
        let staging = FileLog::locate(&dir.path().join("c.state.json.new"));
        assert!(claim.check(&staging, true).unwrap_err().kind() == ErrorKind::Invalid);
        // Gone or emptied, the remembered log is not started over without --new-log.
        for contents in [None, Some("")] {
            match contents {
                None => std::fs::remove_file(&a).unwrap(),
                Some(text) => std::fs::write(&a, text).unwrap(),
            }
            let err = claim.check(&a, false).unwrap_err();
            assert!(matches!(err, SendLogError::LogLost { .. }), "{err}");
            claim.check(&a, true).unwrap();
        }
        claim.check(&b, true).unwrap();
        claim.remember(&b).unwrap();
        assert_eq!(
            CampaignClaim::peek(dir.path(), "c").unwrap().as_deref(),
            Some(b.as_str())
        );
    }

    #[test]
    fn one_run_a_campaign_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let _first = CampaignClaim::take(dir.path(), "c", None).unwrap();
        // A second open of the lock is refused as another process's would be.
        let err = CampaignClaim::take(dir.path(), "c", None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TryAgain, "{err}");
        assert!(err.to_string().contains(&std::process::id().to_string()));
        // Another campaign in the same folder is free.
        CampaignClaim::take(dir.path(), "d", None).unwrap();
    }
}
