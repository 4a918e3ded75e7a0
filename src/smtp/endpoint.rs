//! SMTP server addresses: `smtp://`, `smtp+starttls://` or `smtps://` URLs, parsed once and
//! checked (plain SMTP only to loopback, never a password in the URL).
//!
//! A URL a user types may hold a password even when it is refused, so no error of this module
//! quotes one: what looks like a login or password is masked (see [`mask_credentials`]) before a
//! URL is named in a message.

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
///
/// Made only by [`Endpoint::new`] or parsing, which refuse plain SMTP beyond loopback: the fields
/// are private to `smtp`, so no caller can build one that sends in the clear across a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub(super) security: Security,
    pub(super) host: String,
    pub(super) port: u16,
}

/// Why an SMTP URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// Holds the URL as [`mask_credentials`] shows it.
    #[error("{0:?} is not a URL such as smtp://127.0.0.1:1025")]
    Malformed(String),
    #[error("scheme {0:?} is not one of smtp, smtp+starttls, smtps")]
    Scheme(String),
    #[error(
        "{0}: plain smtp:// is allowed only to a loopback address (127.0.0.1, ::1, localhost); use smtp+starttls:// or smtps://"
    )]
    PlainNotLoopback(String),
    /// Holds the URL with the login and password masked.
    #[error(
        "{0:?}: a login or password does not belong in the URL (it would show in shell history and \
         `ps`): put the login in smtp.username and the password in the environment variable \
         MISSIVE_SMTP_PASSWORD (for [fallback]: fallback.username and MISSIVE_FALLBACK_SMTP_PASSWORD)"
    )]
    CredentialsInUrl(String),
}

/// `text` with whatever looks like the login and password of a URL replaced by `…`: in each word
/// holding a `:` and later an `@`, what lies between the first `:` and the last `@`, when it
/// starts with `//` (`smtps://user:pw@host`) or holds another `:` (`smtp:user:pw@host`). The last
/// `@` because a password may hold one (and URL parsers take the last as the host's). An e-mail
/// address or a `mailto:` link is left as it is.
pub fn mask_credentials(text: &str) -> String {
    let is_boundary = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>');
    let mut masked = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(is_boundary).unwrap_or(rest.len());
        let word = &rest[..end];
        match mask_url(word) {
            Some(shown) => masked.push_str(&shown),
            None => masked.push_str(word),
        }
        let boundary = rest[end..].chars().next();
        if let Some(boundary) = boundary {
            masked.push(boundary);
            rest = &rest[end + boundary.len_utf8()..];
        } else {
            rest = "";
        }
    }
    masked
}

/// `text` masked as one URL, spaces and quotes included (a password may hold them): `None` when
/// it holds no credentials. For what the user typed as one argument, where
/// [`mask_credentials`] would cut the URL at the space and miss its password.
pub fn mask_url(text: &str) -> Option<String> {
    let (colon, at) = (text.find(':')?, text.rfind('@')?);
    let between = text.get(colon + 1..at)?;
    if colon >= at || !(between.starts_with("//") || between.contains(':')) {
        return None;
    }
    let slashes = if between.starts_with("//") { 2 } else { 0 };
    Some(format!("{}…{}", &text[..colon + 1 + slashes], &text[at..]))
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Before parsing: a URL too broken to parse may still hold a password, and the user
        // should hear where it goes rather than that the URL is malformed.
        if let Some(shown) = mask_url(text) {
            return Err(EndpointError::CredentialsInUrl(shown));
        }
        let shown = mask_credentials(text);
        let url = url::Url::parse(text).map_err(|_| EndpointError::Malformed(shown.clone()))?;
        if !url.username().is_empty() || url.password().is_some() {
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
            None => return Err(EndpointError::Malformed(shown)),
        };
        Endpoint::new(security, host, url.port().unwrap_or(default_port))
    }
}

impl Endpoint {
    /// The server at `host` and `port`, reached with `security`; plain SMTP only to a loopback
    /// address ([`EndpointError::PlainNotLoopback`] otherwise).
    pub fn new(security: Security, host: String, port: u16) -> Result<Endpoint, EndpointError> {
        let endpoint = Endpoint {
            security,
            host,
            port,
        };
        if security == Security::Plain && !endpoint.is_loopback() {
            return Err(EndpointError::PlainNotLoopback(endpoint.to_string()));
        }
        Ok(endpoint)
    }

    /// Plain SMTP to `127.0.0.1:port`: a local relay, a mailcatcher, the capture server.
    pub fn loopback(port: u16) -> Endpoint {
        Endpoint {
            security: Security::Plain,
            host: "127.0.0.1".into(),
            port,
        }
    }

    pub fn security(&self) -> Security {
        self.security
    }

    /// A name or an IP address (an IPv6 one without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e: Endpoint = "smtps://mail.example.org".parse().unwrap();
        assert_eq!((e.security(), e.port()), (Security::Tls, 465));
        let e: Endpoint = "smtp+starttls://mail.example.org:2525".parse().unwrap();
        assert_eq!((e.security(), e.port()), (Security::StartTls, 2525));
        assert!("smtp://[::1]:25".parse::<Endpoint>().unwrap().is_loopback());
        assert!(matches!(
            "smtp://mail.example.org".parse::<Endpoint>(),
            Err(EndpointError::PlainNotLoopback(_))
        ));
        let err = "smtps://bob:hunter2@mail.example.org"
            .parse::<Endpoint>()
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(matches!(
            "http://x".parse::<Endpoint>(),
            Err(EndpointError::Scheme(_))
        ));
    }

    #[test]
    fn the_constructor_refuses_plain_smtp_beyond_loopback_as_parsing_does() {
        assert_eq!(
            Endpoint::new(Security::Plain, "mail.example.org".into(), 25),
            Err(EndpointError::PlainNotLoopback(
                "smtp://mail.example.org:25".into()
            ))
        );
        for host in ["127.0.0.1", "::1", "localhost"] {
            let endpoint = Endpoint::new(Security::Plain, host.into(), 25).unwrap();
            assert_eq!(endpoint.to_string().parse(), Ok(endpoint));
        }
        let endpoint = Endpoint::new(Security::Tls, "mail.example.org".into(), 465).unwrap();
        assert_eq!(
            (endpoint.host(), endpoint.port()),
            ("mail.example.org", 465)
        );
        assert_eq!(
            Endpoint::loopback(1025).to_string(),
            "smtp://127.0.0.1:1025"
        );
    }

    #[test]
    fn masks_the_login_and_password_of_urls_only() {
        for (text, masked) in [
            (
                "smtps://bob:hunter2@mail.example.org",
                "smtps://…@mail.example.org",
            ),
            ("smtp://bob@127.0.0.1:25", "smtp://…@127.0.0.1:25"),
            (
                "smtps://:p@ss@mail.example.org",
                "smtps://…@mail.example.org",
            ),
            ("smtp:bob:hunter2@host", "smtp:…@host"),
            (
                "url = \"smtps://u:p%40w@h\n  |  ^",
                "url = \"smtps://…@h\n  |  ^",
            ),
            (
                "mailto:stop@example.org a@b.c",
                "mailto:stop@example.org a@b.c",
            ),
            (
                "smtps://mail.example.org:465",
                "smtps://mail.example.org:465",
            ),
            (
                "cannot read /tmp/x: no such file",
                "cannot read /tmp/x: no such file",
            ),
        ] {
            assert_eq!(mask_credentials(text), masked, "{text:?}");
        }
    }

    #[test]
    fn a_url_typed_as_one_argument_is_masked_whole() {
        assert_eq!(
            mask_url("smtps://u:pass with 'quotes\"@mail.example.org").as_deref(),
            Some("smtps://…@mail.example.org")
        );
        assert_eq!(mask_url("mailto:stop@example.org"), None);
        assert_eq!(mask_url("smtps://mail.example.org:465"), None);
    }

    #[test]
    fn no_error_quotes_a_password() {
        for text in [
            "smtps://bob:hunter2@mail.example.org",
            "smtp:bob:hunter2@mail.example.org",
            "smtps://bob:hunter2@",
            "smtp://bob:hun@ter2@[::1",
            "http://bob:hunter2@x",
        ] {
            let error = text.parse::<Endpoint>().unwrap_err();
            assert!(
                matches!(error, EndpointError::CredentialsInUrl(_)),
                "{text}: {error:?}"
            );
            let message = error.to_string();
            assert!(
                !message.contains("hunter2") && !message.contains("ter2"),
                "{message}"
            );
            assert!(message.contains("MISSIVE_SMTP_PASSWORD"), "{message}");
        }
    }
}
