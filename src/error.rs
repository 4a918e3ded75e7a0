//! What an error means for whoever runs missive from cron: the campaign must be mended by a
//! person, a later run may succeed by itself, or something else went wrong. These are the exit
//! codes of the contract (65, 75, 1), decided where the error is made rather than at the top.
//!
//! Each error type of the core says which of its cases is which, the way lettre's errors say
//! whether retrying could help, in a `match` with no catch-all arm: a new case does not build
//! until someone decides what it means. An error that wraps another asks the one it wraps, so
//! a wrapped error ends the run with the same code as it would alone.

/// What an error asks of the person running missive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The campaign cannot be sent as it stands (a file, a setting, a secret, a relay's
    /// certificate or login): a person must act before a run can succeed. Exit 65.
    Invalid,
    /// Nothing is wrong with the campaign; a later run may succeed without anyone acting
    /// (another run holds the log, a server is away). Exit 75.
    TryAgain,
    /// Anything else: the machine (a disk that cannot be written) or a bug. Exit 1.
    Failure,
}

/// An error that knows its [`ErrorKind`].
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}
