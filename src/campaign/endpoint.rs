//! SMTP server addresses: `smtp://`, `smtp+starttls://` or `smtps://` URLs, parsed once and
//! checked (plain SMTP only to loopback, never a password in the URL).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// How missive talks to an SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No encryption: allowed only to a loopback address (a local relay or mailcatcher).
    Plain,
    /// Plain connection upgraded with STARTTLS, which is required, not opportunistic.
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// A parsed SMTP server address: `smtp://`, `smtp+starttls://` or `smtps://` with host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub security: Security,
    pub host: String,
    pub port: u16,
}

/// Why an SMTP URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("{0:?} is not a URL such as smtp://127.0.0.1:1025")]
    Malformed(String),
    #[error("scheme {0:?} is not one of smtp, smtp+starttls, smtps")]
    Scheme(String),
    #[error(
        "{0}: plain smtp:// is allowed only to a loopback address (127.0.0.1, ::1, localhost); use smtp+starttls:// or smtps://"
    )]
    PlainNotLoopback(String),
    #[error(
        "{0:?}: put the login in smtp.username and the password in MISSIVE_SMTP_PASSWORD, not in the URL"
    )]
    CredentialsInUrl(String),
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(text).map_err(|_| EndpointError::Malformed(text.into()))?;
        if !url.username().is_empty() || url.password().is_some() {
            // Never echo the URL itself: it holds a secret.
            return Err(EndpointError::CredentialsInUrl(format!(
                "{}://…@{}",
                url.scheme(),
                url.host_str().unwrap_or("")
            )));
        }
        let (security, default_port) = match url.scheme() {
            "smtp" => (Security::Plain, 25),
            "smtp+starttls" => (Security::StartTls, 587),
            "smtps" => (Security::Tls, 465),
            other => return Err(EndpointError::Scheme(other.into())),
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(EndpointError::Malformed(text.into())),
        };
        let endpoint = Endpoint {
            security,
            host,
            port: url.port().unwrap_or(default_port),
        };
        if security == Security::Plain && !endpoint.is_loopback() {
            return Err(EndpointError::PlainNotLoopback(text.into()));
        }
        Ok(endpoint)
    }
}

impl Endpoint {
    /// True for 127.0.0.0/8, ::1 and `localhost`: the only places plain SMTP may go.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.security {
            Security::Plain => "smtp",
            Security::StartTls => "smtp+starttls",
            Security::Tls => "smtps",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}
