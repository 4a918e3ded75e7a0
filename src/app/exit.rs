//! Exit codes: the contract's four numbers, and how an error that ended a command picks one.
//!
//! Each error type of the core says what kind of stop it is ([`Classify`]); this file only lists
//! those types and turns the first kind found in an error's chain into the code cron reads.

use crate::campaign::CampaignError;
use crate::dkim::DkimError;
use crate::error::{Classify, ErrorKind};
use crate::letter::LetterError;
use crate::recipients::RecipientsError;
use crate::send::SendError;
use crate::sendlog::SendLogError;
use crate::smtp::TransportError;
use crate::suppression::SuppressionError;

/// The exit codes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Nothing left to do.
    Done = 0,
    /// Any other error.
    Failure = 1,
    /// The campaign cannot be sent as it stands.
    Invalid = 65,
    /// Work is left: run again later.
    TryAgain = 75,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}

impl From<ErrorKind> for Exit {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Invalid => Exit::Invalid,
            ErrorKind::TryAgain => Exit::TryAgain,
            ErrorKind::Failure => Exit::Failure,
        }
    }
}

/// A campaign setting that makes a real send impossible (a missing secret): exit 65.
#[derive(Debug, thiserror::Error)]
#[error("the campaign cannot be sent as it stands")]
pub struct Unsendable;

impl Classify for Unsendable {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

/// Maps an error that ended a command to its exit code: the kind of the outermost error of the
/// core in its chain (which asks any error it wraps), or 1 when there is none.
pub fn exit_for_error(error: &anyhow::Error) -> Exit {
    error
        .chain()
        .find_map(|cause| CORE_ERRORS.iter().find_map(|kind_of| kind_of(cause)))
        .map_or(Exit::Failure, Exit::from)
}

type Cause<'a> = &'a (dyn std::error::Error + 'static);

/// Every error type of the core that can end a command. Which of its cases means what is the
/// type's own decision ([`Classify`]); a type left out of this list would end with 1.
const CORE_ERRORS: [fn(Cause<'_>) -> Option<ErrorKind>; 9] = [
    kind_of::<SendError>,
    kind_of::<SendLogError>,
    kind_of::<CampaignError>,
    kind_of::<LetterError>,
    kind_of::<RecipientsError>,
    kind_of::<SuppressionError>,
    kind_of::<DkimError>,
    kind_of::<TransportError>,
    kind_of::<Unsendable>,
];

fn kind_of<E: Classify + std::error::Error + 'static>(cause: Cause<'_>) -> Option<ErrorKind> {
    cause.downcast_ref::<E>().map(Classify::kind)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::send::Stopped;
    use crate::smtp::RelayName;

    fn io() -> std::io::Error {
        std::io::Error::from_raw_os_error(5)
    }

    fn unreadable_list() -> RecipientsError {
        RecipientsError::Read {
            path: "list.csv".into(),
            source: io(),
        }
    }

    fn locked() -> SendLogError {
        SendLogError::Locked {
            path: "send.log".into(),
            holder: String::new(),
        }
    }

    #[test]
    fn an_error_wrapped_in_another_ends_with_its_own_code() {
        let wrapped = anyhow::Error::from(SendError::Recipients(unreadable_list()));
        assert_eq!(exit_for_error(&wrapped), Exit::Invalid);
        let wrapped = anyhow::Error::from(SendError::Log(Arc::new(locked())));
        assert_eq!(exit_for_error(&wrapped), Exit::TryAgain);
        let disk = SendLogError::Io {
            path: "send.log".into(),
            source: io(),
        };
        let wrapped = anyhow::Error::from(SendError::Log(Arc::new(disk)));
        assert_eq!(exit_for_error(&wrapped), Exit::Failure);
        // Context added at the edge changes nothing.
        let wrapped = anyhow::Error::from(SendError::Recipients(unreadable_list()))
            .context("the run stopped");
        assert_eq!(exit_for_error(&wrapped), Exit::Invalid);
    }

    #[test]
    fn each_error_of_the_core_ends_with_the_code_its_kind_says() {
        let campaign = CampaignError::InvalidAt {
            path: "campaign.toml".into(),
            line: 4,
            field: "from".into(),
            problem: "not an address".into(),
        };
        let cases = [
            (anyhow::Error::from(campaign), Exit::Invalid),
            (anyhow::Error::from(unreadable_list()), Exit::Invalid),
            (anyhow::Error::from(locked()), Exit::TryAgain),
            (
                anyhow::Error::new(Unsendable).context("MISSIVE_SMTP_PASSWORD is unset"),
                Exit::Invalid,
            ),
            (
                anyhow::Error::from(io()).context("cannot start the async runtime"),
                Exit::Failure,
            ),
            (anyhow::anyhow!("anything else"), Exit::Failure),
        ];
        for (error, exit) in cases {
            assert_eq!(exit_for_error(&error), exit, "{error:#}");
        }
    }

    #[test]
    fn a_run_stopped_by_what_a_person_must_mend_is_invalid_and_by_the_rest_try_again() {
        let refused = Stopped::LoginRefused {
            relay: RelayName::Primary,
            why: "535".into(),
        };
        let untrusted = Stopped::Untrusted {
            relay: RelayName::Fallback,
            why: "invalid peer certificate".into(),
        };
        assert_eq!(Exit::from(refused.kind()), Exit::Invalid);
        assert_eq!(Exit::from(untrusted.kind()), Exit::Invalid);
        for stopped in [
            Stopped::MaxMessages,
            Stopped::Unreachable("no answer".into()),
            Stopped::Interrupted,
        ] {
            assert_eq!(Exit::from(stopped.kind()), Exit::TryAgain, "{stopped:?}");
        }
    }
}
