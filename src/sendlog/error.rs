//! What can go wrong with a send log, whichever its backend: one error type, each variant
//! saying what a person should do about it, and whether a later run could succeed by itself
//! ([`Classify`]).

use std::path::PathBuf;

use crate::error::{Classify, ErrorKind};

/// The send log could not be read, written or locked.
#[derive(Debug, thiserror::Error)]
pub enum SendLogError {
    #[error("send log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("send log {path}:{line}: not a log record ({message}); the log was edited or damaged")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// Another `send` holds the log: two runs would send twice.
    #[error("send log {path} is locked by another missive run{holder}; try again when it ends")]
    Locked { path: PathBuf, holder: String },
    /// Another `send` of the same campaign runs, perhaps with another log.
    #[error(
        "campaign {campaign} is being sent by another missive run{holder} (lock {path}); \
         try again when it ends"
    )]
    CampaignLocked {
        campaign: String,
        path: PathBuf,
        holder: String,
    },
    /// The file is not a send log (its first line is no record), the lock's place holds
    /// something other than a lock, or the campaign's record of its log is damaged: the file
    /// is left as it was.
    #[error("{path}: {problem}")]
    NotALog { path: PathBuf, problem: String },
    /// The log names another campaign: replaying it would count that campaign's people done.
    #[error(
        "send log {log} belongs to campaign {found}, not to {expected}: it cannot tell who of \
         {expected} was sent. Use {expected}'s own log, or name a new one with --log PATH --new-log"
    )]
    OtherCampaign {
        log: String,
        found: String,
        expected: String,
    },
    /// The campaign has been sending with another log: this one would mail everyone again.
    #[error(
        "campaign {campaign} has been sending with the send log {in_use} (recorded in {state}), \
         not {given}{differs}: a different log would mail everyone it does not list again. Use \
         that log (check --log), or pass --new-log if {given} is meant from now on"
    )]
    OtherLog {
        campaign: String,
        in_use: String,
        given: String,
        /// What tells two database URLs apart where messages mask it (their users). Boxed: the
        /// error stays small.
        differs: Box<str>,
        state: PathBuf,
    },
    /// The log the campaign has been sending with is gone or empty: a new one would mail
    /// everyone again (the story of an operator deleting a log that looked damaged).
    #[error(
        "campaign {campaign} has been sending with the send log {log} (recorded in {state}), \
         but it is {problem}: without it everyone would be mailed again. Put it back (from a \
         backup, or undo the move), or pass --new-log to start over and mail everyone on the list \
         again"
    )]
    LogLost {
        campaign: String,
        log: String,
        problem: &'static str,
        state: PathBuf,
    },
    /// The database the campaign has been sending with holds another row for its id: a
    /// database replaced or restored, or another campaign of the same id, listing nobody this
    /// campaign mailed.
    #[error(
        "campaign {campaign} has been sending with the send log {log} as its row {remembered} \
         there (recorded in {state}), but the database's campaign {campaign} is now the row \
         {found}: that row does not list who this campaign mailed, and everyone else would be \
         mailed again. Point --log at the database the campaign has been using (or restore it), \
         or pass --new-log if this row is meant from now on"
    )]
    OtherCampaignRow {
        campaign: String,
        log: String,
        remembered: String,
        found: String,
        state: PathBuf,
    },
    /// An import would mix two histories of one campaign: the database's and a file's.
    #[error(
        "send log {log} already holds a history of campaign {campaign} that is not the file's \
         ({problem}): importing would mix them and mail people twice or never. Keep sending \
         with the log the campaign has been using"
    )]
    OtherHistory {
        log: String,
        campaign: String,
        problem: String,
    },
    /// A database log's URL that cannot be used (it holds a password, asks for plain text
    /// beyond this machine, or is no PostgreSQL URL). `url` is never shown with a password.
    #[error("send log {url}: {problem}")]
    DatabaseUrl { url: String, problem: String },
    /// The database cannot be reached, or went away: a later run may find it back.
    #[error(
        "send log {log}: the database cannot be reached or went away ({problem}); nothing is \
         lost: run again once it is back"
    )]
    DatabaseUnreachable { log: String, problem: String },
    /// Another sender's transaction crossed this one's (a deadlock, or a serialization
    /// failure): the database undid this one whole, and it may simply be done again.
    #[error(
        "send log {log}: another sender's work crossed this one's in the database, which undid \
         it ({problem}); nothing is lost: run again"
    )]
    DatabaseCrossed { log: String, problem: String },
    /// The database refused missive (login, rights, a missing database, a certificate): a
    /// person must act.
    #[error("send log {log}: the database refused missive ({problem}); {remedy}")]
    DatabaseRefused {
        log: String,
        problem: String,
        remedy: &'static str,
    },
    /// Any other answer of the database: a bug of missive's, or of the database.
    #[error("send log {log}: {problem}")]
    DatabaseFailed { log: String, problem: String },
    /// The database holds the send log's tables as a later missive made them: this one would
    /// misread them.
    #[error(
        "send log {log}: the database's send log schema is version {found} (made by missive \
         {made_by}), but this missive ({ours}) knows versions up to {known}: run a missive as \
         recent on this machine"
    )]
    NewerSchema {
        log: String,
        found: i32,
        made_by: String,
        known: i32,
        ours: &'static str,
    },
    /// The database holds the send log's tables as an earlier missive made them, and the
    /// command only reads (`status`, `log export`): a send migrates them.
    #[error(
        "send log {log}: the database's send log schema is version {found}, older than this \
         missive's ({known}); `status` and `log export` only read, so they leave it as it is: \
         a `missive send` of this version brings it up to date"
    )]
    OlderSchema { log: String, found: i32, known: i32 },
}

impl Classify for SendLogError {
    fn kind(&self) -> ErrorKind {
        match self {
            // The disk, not the campaign.
            SendLogError::Io { .. } => ErrorKind::Failure,
            // A person must look at the log before anyone is mailed on its word.
            SendLogError::Corrupt { .. } => ErrorKind::Invalid,
            // Not a send log, another campaign's, or not the one the campaign has been using:
            // a person must choose.
            SendLogError::NotALog { .. }
            | SendLogError::OtherCampaign { .. }
            | SendLogError::OtherLog { .. }
            | SendLogError::OtherCampaignRow { .. }
            | SendLogError::OtherHistory { .. }
            | SendLogError::LogLost { .. } => ErrorKind::Invalid,
            // The other run ends by itself.
            SendLogError::Locked { .. } | SendLogError::CampaignLocked { .. } => {
                ErrorKind::TryAgain
            }
            // The database comes back by itself, or is restarted by its keepers.
            SendLogError::DatabaseUnreachable { .. } => ErrorKind::TryAgain,
            // The other sender's transaction ends by itself.
            SendLogError::DatabaseCrossed { .. } => ErrorKind::TryAgain,
            // A URL, a login or a version to mend before anyone is mailed.
            SendLogError::DatabaseUrl { .. }
            | SendLogError::DatabaseRefused { .. }
            | SendLogError::NewerSchema { .. }
            | SendLogError::OlderSchema { .. } => ErrorKind::Invalid,
            SendLogError::DatabaseFailed { .. } => ErrorKind::Failure,
        }
    }
}
