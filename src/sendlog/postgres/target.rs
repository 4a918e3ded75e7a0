//! Where the database log lives: a `postgres://user@host:port/db` URL read once into a
//! [`PgTarget`], with what the URL leaves out taken from libpq's variables (`PGHOST`, `PGPORT`,
//! `PGUSER`, `PGDATABASE`, `PGSSLMODE`, `PGCONNECT_TIMEOUT`) and the password from `PGPASSWORD`
//! only: a password in the URL would show in shell history, `ps` and the campaign file, so it is
//! refused without being printed, as SMTP URLs are.
//!
//! Plain text is allowed only to this machine (a loopback address or a Unix socket), like plain
//! SMTP; anywhere else TLS is required and the server's certificate verified, for the host's
//! name, against the web's roots or the authority `sslrootcert` (or `PGSSLROOTCERT`) names,
//! whatever `sslmode` says (`require` verifies too, where libpq would not).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio_postgres::config::{Config, SslMode};

use super::tls::read_authority;
use crate::sendlog::SendLogError;

/// The `sslmode` values missive accepts, for messages.
const SSL_MODES: &str = "disable (on this machine only), require, verify-ca, verify-full";

/// The parameters a URL may hold, for messages.
const PARAMETERS: &str = "host, port, sslmode, sslrootcert, connect_timeout and application_name";

/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A database log's address and login, checked: it can only be made by [`PgTarget::parse`].
#[derive(Clone)]
pub struct PgTarget {
    pub(super) config: Config,
    /// The URL as messages show it: never with a password (none is allowed in it).
    pub(super) shown: String,
    pub(super) tls: bool,
    /// The authority `sslrootcert` names, trusted instead of the web's roots.
    pub(super) authority: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl std::fmt::Debug for PgTarget {
    // The derived form would print the password taken from PGPASSWORD.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.shown)
            .field("tls", &self.tls)
            .finish()
    }
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PgTarget {
    /// Reads `url`, completed by the libpq variables of this process's environment.
    pub fn from_env(url: &str) -> Result<PgTarget, SendLogError> {
        PgTarget::parse(url, |name| std::env::var(name).ok())
    }

    /// Reads `url`, completed by `env` (the environment, or a test's). Refuses a password in the
    /// URL (without printing it), an unknown parameter, and plain text beyond this machine.
    pub fn parse(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<PgTarget, SendLogError> {
        let refuse = |shown: &str, problem: String| SendLogError::DatabaseUrl {
            url: shown.to_owned(),
            problem,
        };
        let password_refused = |shown: &str| {
            refuse(
                shown,
                "a password does not belong in the URL (it would show in shell history, `ps` \
                 and the campaign file): put it in the environment variable PGPASSWORD"
                    .into(),
            )
        };
        // A URL too broken to read may still hold a password: shown masked.
        let masked = crate::smtp::mask_url(url).unwrap_or_else(|| url.to_owned());
        let parsed = url::Url::parse(url).map_err(|_| {
            // Too broken to read, and a login with a `:` in it: a password, still refused.
            let login = url
                .split_once("://")
                .and_then(|(_, rest)| rest.rsplit_once('@'));
            if login.is_some_and(|(login, _)| login.contains(':')) {
                return password_refused(&masked);
            }
            refuse(
                &masked,
                "not a URL such as postgres://missive@db.example.org:5432/mail".into(),
            )
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(refuse(
                &masked,
                format!("scheme {:?} is not postgres", parsed.scheme()),
            ));
        }
        let password_param = parsed.query_pairs().any(|(key, _)| key == "password");
        if parsed.password().is_some() || password_param {
            let host = parsed.host_str().unwrap_or_default();
            return Err(password_refused(&format!("{}://…@{host}", parsed.scheme())));
        }
        // No password in it: the URL is shown as given, its user included.
        let shown = url.to_owned();
        let decode = percent_decode;
        let mut config = Config::new();
        let mut host = parsed.host_str().map(decode).filter(|h| !h.is_empty());
        let mut port = parsed.port();
        let mut ssl_mode = None;
        let mut root_cert = None;
        let mut connect_timeout = None;
        for (key, value) in parsed.query_pairs() {
            match &*key {
                "host" => host = Some(value.into_owned()),
                "port" => port = Some(parse_number(&shown, "port", &value)?),
                "sslmode" => ssl_mode = Some(value.into_owned()),
                "sslrootcert" => root_cert = Some(value.into_owned()),
                "connect_timeout" => {
                    connect_timeout = Some(parse_number(&shown, "connect_timeout", &value)?);
                }
                "application_name" => {
                    config.application_name(&*value);
                }
                other => {
                    // Its value is not shown: it may be a secret (libpq's sslpassword).
                    let base = shown.split_once('?').map_or(&*shown, |(base, _)| base);
                    return Err(refuse(
                        &format!("{base}?…"),
                        format!("unknown parameter {other:?} (missive reads {PARAMETERS})"),
                    ));
                }
            }
        }
        let host = host
            .or_else(|| env("PGHOST"))
            .unwrap_or_else(|| "localhost".into());
        let port = match port {
            Some(port) => port,
            None => match env("PGPORT") {
                Some(port) => parse_number(&shown, "PGPORT", &port)?,
                None => 5432,
            },
        };
        let database = parsed.path().trim_start_matches('/');
        let database = Some(decode(database))
            .filter(|d| !d.is_empty())
            .or_else(|| env("PGDATABASE"));
        let user = Some(decode(parsed.username()))
            .filter(|u| !u.is_empty())
            .or_else(|| env("PGUSER"));
        let connect_timeout = match connect_timeout {
            Some(seconds) => Some(seconds),
            None => env("PGCONNECT_TIMEOUT")
                .map(|t| parse_number(&shown, "PGCONNECT_TIMEOUT", &t))
                .transpose()?,
        };
        let socket = host.starts_with('/');
        let local = socket || is_loopback(&host);
        let authority = match root_cert.or_else(|| env("PGSSLROOTCERT")) {
            Some(path) => Some(Arc::new(read_authority(&shown, Path::new(&path))?)),
            None => None,
        };
        let tls = match ssl_mode.or_else(|| env("PGSSLMODE")).as_deref() {
            None => !local || (authority.is_some() && !socket),
            Some("disable") if local => false,
            Some("disable") => {
                return Err(refuse(
                    &shown,
                    format!(
                        "sslmode=disable is allowed only to this machine (127.0.0.1, ::1, \
                         localhost or a Unix socket), not {host}: leave sslmode out, or use \
                         verify-full"
                    ),
                ));
            }
            Some("require" | "verify-ca" | "verify-full") => !socket,
            Some(other) => {
                return Err(refuse(
                    &shown,
                    format!(
                        "sslmode={other} is not one missive uses ({SSL_MODES}): `allow` and \
                         `prefer` would fall back to plain text unseen"
                    ),
                ));
            }
        };
        if socket {
            config.host_path(&host);
        } else {
            config.host(&host);
        }
        config.port(port);
        if let Some(database) = &database {
            config.dbname(database);
        }
        if let Some(user) = &user {
            config.user(user);
        }
        if let Some(password) = env("PGPASSWORD") {
            config.password(password);
        }
        config.ssl_mode(if tls {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        config.connect_timeout(connect_timeout.map_or(CONNECT_TIMEOUT, Duration::from_secs));
        if config.get_application_name().is_none() {
            config.application_name(format!(
                "missive {} (pid {})",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            ));
        }
        Ok(PgTarget {
            config,
            shown,
            tls,
            authority,
        })
    }

    /// Whether `text` names a database (`postgres://` or `postgresql://`) rather than a file.
    pub fn is_url(text: &str) -> bool {
        let scheme = text.split_once("://").map(|(scheme, _)| scheme);
        scheme.is_some_and(|s| {
            s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql")
        })
    }

    /// Whether the connection is encrypted (and the server's certificate verified).
    pub fn uses_tls(&self) -> bool {
        self.tls
    }
}

/// A loopback name or address: plain text to it never leaves the machine.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `text` with its `%XX` escapes decoded (a URL's user, database or socket folder).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                at += 3;
            }
            None => {
                decoded.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn parse_number<N: std::str::FromStr>(
    shown: &str,
    name: &str,
    value: &str,
) -> Result<N, SendLogError> {
    value.parse().map_err(|_| SendLogError::DatabaseUrl {
        url: shown.to_owned(),
        problem: format!("{name} {value:?} is not a number"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorKind};

    fn parse(url: &str, env: &[(&str, &str)]) -> Result<PgTarget, SendLogError> {
        PgTarget::parse(url, |name| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_never_shown() {
        for url in [
            "postgres://missive:s3cr%20t@db.example.org/mail",
            "postgresql://missive:s3cr t@db.example.org:5432/mail",
            "postgres://db.example.org/mail?password=s3cr",
            "postgres://missive:s3cr@",
        ] {
            let err = parse(url, &[]).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains("s3cr"), "{text}");
            assert!(text.contains("PGPASSWORD"), "{text}");
            assert_eq!(err.kind(), ErrorKind::Invalid);
        }
    }

    #[test]
    fn an_unknown_parameter_is_named_and_its_value_never_shown() {
        let err = parse(
            "postgres://missive@127.0.0.1/mail?sslmode=disable&sslpassword=s3cr",
            &[],
        )
        .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("s3cr"), "{text}");
        assert!(text.contains("\"sslpassword\""), "{text}");
        assert!(
            text.contains("postgres://missive@127.0.0.1/mail?…"),
            "{text}"
        );
    }

    #[test]
    fn the_password_comes_from_pgpassword_and_is_never_printed() {
        let target = parse(
            "postgres://missive@db.example.org/mail",
            &[("PGPASSWORD", "hunter22")],
        )
        .unwrap();
        assert_eq!(target.config.get_password(), Some(&b"hunter22"[..]));
        assert!(!format!("{target:?} {target}").contains("hunter22"));
        assert_eq!(target.config.get_user(), Some("missive"));
        assert_eq!(target.config.get_dbname(), Some("mail"));
        assert_eq!(target.config.get_ports(), [5432]);
        assert!(target.uses_tls());
    }

    #[test]
    fn what_the_url_leaves_out_comes_from_libpq_variables() {
        let env = [
            ("PGHOST", "/run/postgresql"),
            ("PGPORT", "5433"),
            ("PGUSER", "mailer"),
            ("PGDATABASE", "campaigns"),
        ];
        let target = parse("postgres://", &env).unwrap();
        assert_eq!(target.config.get_user(), Some("mailer"));
        assert_eq!(target.config.get_dbname(), Some("campaigns"));
        assert_eq!(target.config.get_ports(), [5433]);
        assert!(!target.uses_tls(), "a Unix socket needs no TLS");
        // The URL wins over the environment.
        let target = parse("postgres://u@127.0.0.1:6000/db", &env).unwrap();
        assert_eq!(target.config.get_user(), Some("u"));
        assert_eq!(target.config.get_ports(), [6000]);
        assert!(!target.uses_tls());
    }

    #[test]
    fn plain_text_only_to_this_machine() {
        for url in [
            "postgres://u@127.0.0.1/db?sslmode=disable",
            "postgres://u@[::1]/db?sslmode=disable",
            "postgres://u@localhost/db",
        ] {
            assert!(!parse(url, &[]).unwrap().uses_tls(), "{url}");
        }
        let err = parse("postgres://u@db.example.org/db?sslmode=disable", &[]).unwrap_err();
        assert!(err.to_string().contains("only to this machine"), "{err}");
        let err = parse("postgres://u@db.example.org/db", &[("PGSSLMODE", "prefer")]).unwrap_err();
        assert!(err.to_string().contains("plain text unseen"), "{err}");
        for mode in ["require", "verify-ca", "verify-full"] {
            let url = format!("postgres://u@db.example.org/db?sslmode={mode}");
            assert!(parse(&url, &[]).unwrap().uses_tls(), "{url}");
        }
        let err = parse("postgres://u@h/db?sslcert=x", &[]).unwrap_err();
        assert!(err.to_string().contains("\"sslcert\""), "{err}");
    }
}
