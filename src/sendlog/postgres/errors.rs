//! What a database error means for whoever runs missive: gone for now (the database is down,
//! restarting, or cut off: a later run may succeed, exit 75), refused (a login, a right, a
//! missing database, a certificate: a person must act, exit 65), or anything else.

use std::error::Error as _;
use std::time::Duration;

use super::PgTarget;
use crate::sendlog::SendLogError;

/// What a database error means for whoever runs missive: gone for now (a later run may
/// succeed), refused (a person must act), or anything else.
pub(super) fn database_error(log: &str, error: &tokio_postgres::Error) -> SendLogError {
    let log = log.to_owned();
    if let Some(db) = error.as_db_error() {
        let problem = describe_db(db);
        let code = db.code().code();
        let refused = |remedy| SendLogError::DatabaseRefused {
            log: log.clone(),
            problem: problem.clone(),
            remedy,
        };
        return match code.get(..2).unwrap_or_default() {
            // A deadlock or a serialization failure: the transaction was undone whole.
            // Or a lock waited for too long (a migration's, see `schema`): done again later.
            "40" | "55" if ["40P01", "40001", "55P03"].contains(&code) => {
                SendLogError::DatabaseCrossed { log, problem }
            }
            // Connection lost, too many connections, shutting down, recovering.
            "08" | "53" | "57" | "40" => SendLogError::DatabaseUnreachable { log, problem },
            "28" => refused(LOGIN),
            "3D" => refused("create the database, or name another in the URL"),
            _ if code == "42501" => refused(
                "grant missive's user the right to create the schema missive (on first use) \
                 and to read and write its tables",
            ),
            _ => SendLogError::DatabaseFailed { log, problem },
        };
    }
    let problem = describe(error);
    let top = error.to_string();
    if let Some(problem) = refused_certificate(error) {
        return SendLogError::DatabaseRefused {
            log,
            problem,
            remedy: WEB_AUTHORITY,
        };
    }
    if top.starts_with("invalid configuration") || top.starts_with("authentication") {
        return SendLogError::DatabaseRefused {
            log,
            problem,
            remedy: LOGIN,
        };
    }
    let io = causes(error).any(|e| e.is::<std::io::Error>());
    if io || error.is_closed() || top.starts_with("timeout") || top.starts_with("error connecting")
    {
        return SendLogError::DatabaseUnreachable { log, problem };
    }
    SendLogError::DatabaseFailed { log, problem }
}

const LOGIN: &str = "check the user (in the URL, or PGUSER) and the password (in PGPASSWORD)";

const WEB_AUTHORITY: &str = "the database's certificate must be valid for its name and signed by \
     an authority of the web's; for a private authority, name its certificate (PEM) with \
     ?sslrootcert=PATH or PGSSLROOTCERT";

const OWN_AUTHORITY: &str = "the database's certificate must be valid for its name and signed by \
     the authority sslrootcert (or PGSSLROOTCERT) names";

const SELF_SIGNED_AUTHORITY: &str = "the database shows an authority's certificate (CA:TRUE, \
     what `openssl req -x509` makes unless told otherwise) as its own, which TLS refuses: give \
     the database a certificate signed by the authority sslrootcert names, or make its \
     self-signed one with `-addext basicConstraints=critical,CA:FALSE` and name that one in \
     sslrootcert";

/// [`database_error`] for a connection to `target`: a refused certificate's remedy says which
/// authority it was checked against, and what to do when the database shows an authority's
/// own certificate (a self-signed one made as PostgreSQL's documentation makes it).
pub(super) fn connect_error(target: &PgTarget, error: &tokio_postgres::Error) -> SendLogError {
    match database_error(&target.shown, error) {
        SendLogError::DatabaseRefused {
            log,
            problem,
            remedy: WEB_AUTHORITY,
        } if target.authority.is_some() => {
            // rustls keeps webpki's reason as an opaque error: only its text names it.
            let remedy = match problem.contains("CaUsedAsEndEntity") {
                true => SELF_SIGNED_AUTHORITY,
                false => OWN_AUTHORITY,
            };
            SendLogError::DatabaseRefused {
                log,
                problem,
                remedy,
            }
        }
        other => other,
    }
}

/// The reason rustls refused the database's certificate, if that is why TLS failed.
fn refused_certificate(error: &tokio_postgres::Error) -> Option<String> {
    causes(error).find_map(|cause| {
        let tls = cause.downcast_ref::<rustls::Error>().or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        })?;
        matches!(tls, rustls::Error::InvalidCertificate(_)).then(|| tls.to_string())
    })
}

/// `error` and its causes, one after another.
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    for cause in causes(error) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// What `error` wraps, outermost first.
fn causes(
    error: &tokio_postgres::Error,
) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(error.source(), |&cause| cause.source())
}

/// How a database error reads in a message: its severity, text, code, detail and hint.
fn describe_db(error: &tokio_postgres::error::DbError) -> String {
    let mut text = format!(
        "{} {}: {}",
        error.severity(),
        error.code().code(),
        error.message()
    );
    for extra in [error.detail(), error.hint()].into_iter().flatten() {
        text.push_str("; ");
        text.push_str(extra);
    }
    text
}

/// How long the database may take to answer one request (a batch, a chunk of the replay)
/// before it counts as unreachable: a database cut off by the network sends no reset.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// `work`, or [`SendLogError::DatabaseUnreachable`] if the database has not answered within
/// [`ANSWER_TIMEOUT`].
pub(super) async fn timely<T>(
    log: &str,
    work: impl Future<Output = Result<T, SendLogError>>,
) -> Result<T, SendLogError> {
    tokio::time::timeout(ANSWER_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            Err(SendLogError::DatabaseUnreachable {
                log: log.to_owned(),
                problem: format!("no answer in {} s", ANSWER_TIMEOUT.as_secs()),
            })
        })
}
