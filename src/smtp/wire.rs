//! What goes on the wire, in the shapes missive writes it: a message dot-stuffed and
//! terminated in one piece, MAIL, RCPT and DATA as one group, a message and the next one's group
//! as one write; and how replies and failures read.

use lettre::address::Envelope;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::response::Response;

/// Whether an EHLO reply lists `extension` (a keyword opens one of its lines).
pub(super) fn offers(ehlo: &Response, extension: &str) -> bool {
    ehlo.message().any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|keyword| keyword.eq_ignore_ascii_case(extension))
    })
}

/// MAIL, RCPT and DATA as one write (RFC 2920 allows DATA to end a group).
pub(super) struct Group {
    pub(super) mail: Mail,
    pub(super) rcpts: Vec<Rcpt>,
}

impl Group {
    pub(super) fn new(mail: Mail, envelope: &Envelope) -> Group {
        let rcpts = envelope
            .to()
            .iter()
            .map(|to| Rcpt::new(to.clone(), vec![]))
            .collect();
        Group { mail, rcpts }
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.mail)?;
        for rcpt in &self.rcpts {
            write!(f, "{rcpt}")?;
        }
        write!(f, "{Data}")
    }
}

/// A message, and the next one's group after it, as one write.
pub(super) struct Chained(pub(super) DataBlock, pub(super) Group);

impl std::fmt::Display for Chained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.0, self.1)
    }
}

/// lettre's description of a failure, each part once ("Connection error: Connection error:
/// invalid peer certificate" reads twice).
pub(super) fn broken(description: &str) -> String {
    let mut parts: Vec<&str> = description.split(": ").collect();
    parts.dedup();
    parts.join(": ")
}

/// What rustls found wrong with the relay's certificate, when that is why `error` happened. A
/// handshake cut short, a refused connection or a timeout is not a certificate problem: those
/// may mend by themselves.
pub(super) fn certificate_problem(
    error: &lettre::transport::smtp::Error,
) -> Option<&rustls::CertificateError> {
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        // tokio-rustls hands rustls's error over inside an io::Error, whose `source` skips it.
        let tls = error.downcast_ref::<rustls::Error>().or_else(|| {
            error
                .downcast_ref::<std::io::Error>()?
                .get_ref()?
                .downcast_ref::<rustls::Error>()
        });
        if let Some(rustls::Error::InvalidCertificate(problem)) = tls {
            return Some(problem);
        }
        cause = error.source();
    }
    None
}

/// lettre's description of a certificate refused, with what to do about it.
pub(super) fn untrusted(description: &str, problem: &rustls::CertificateError) -> String {
    use rustls::CertificateError as Problem;
    let hint = match problem {
        Problem::UnknownIssuer => {
            "if the relay's certificate comes from its own authority, name that authority's PEM \
             file in ca_file, under [smtp] or [fallback]"
        }
        Problem::NotValidForName | Problem::NotValidForNameContext { .. } => {
            "name the relay in its url by a name its certificate carries"
        }
        Problem::Expired
        | Problem::ExpiredContext { .. }
        | Problem::NotValidYet
        | Problem::NotValidYetContext { .. } => {
            "the relay's certificate is out of date, or this machine's clock is wrong"
        }
        _ => "check the relay's certificate, and ca_file under [smtp] or [fallback]",
    };
    format!("{} ({hint})", broken(description))
}

pub(super) fn reply_text(response: &Response) -> String {
    let text: Vec<&str> = response.message().collect();
    format!("{} {}", response.code(), text.join(" "))
}

/// A message ready for the wire after DATA: dot-stuffed and terminated by `CRLF.CRLF`, exactly
/// as lettre's `message` sends it, but as one string so that it goes out in one write. lettre
/// writes the terminator separately, and Nagle's algorithm then holds that small last write
/// until the server acknowledges the body, which a server waiting for the terminator delays
/// (up to 40 ms on Linux): a stall on every message, which capped each connection at a few
/// dozen messages a second.
pub(super) struct DataBlock(String);

impl DataBlock {
    /// `None` when the message is not UTF-8 (lettre's messages always are), so the caller can
    /// fall back on lettre's own path.
    pub(super) fn new(message: &[u8]) -> Option<DataBlock> {
        let text = std::str::from_utf8(message).ok()?;
        let mut block = String::with_capacity(text.len() + text.len() / 64 + 8);
        if text.starts_with('.') {
            block.push('.');
        }
        let mut rest = text;
        while let Some(newline) = memchr::memmem::find(rest.as_bytes(), b"\n.") {
            block.push_str(&rest[..=newline]);
            block.push('.');
            rest = &rest[newline + 1..];
        }
        block.push_str(rest);
        block.push_str("\r\n.\r\n");
        Some(DataBlock(block))
    }
}

impl std::fmt::Display for DataBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelining_is_read_from_the_ehlo_reply() {
        use lettre::transport::smtp::response::{Category, Code, Detail, Severity};
        let ehlo = |lines: &[&str]| {
            let code = Code::new(
                Severity::PositiveCompletion,
                Category::MailSystem,
                Detail::Zero,
            );
            Response::new(code, lines.iter().map(|l| l.to_string()).collect())
        };
        assert!(offers(
            &ehlo(&["mx.example.org", "8BITMIME", "pipelining", "SIZE 1000"]),
            "PIPELINING"
        ));
        assert!(!offers(
            &ehlo(&["mx.example.org", "XPIPELINING", "SIZE PIPELINING"]),
            "PIPELINING"
        ));
    }

    #[test]
    fn a_data_block_is_dot_stuffed_and_terminated() {
        let block = DataBlock::new(b".top\r\nmiddle.\r\n..two\r\nend").unwrap();
        assert_eq!(block.0, "..top\r\nmiddle.\r\n...two\r\nend\r\n.\r\n");
        assert!(DataBlock::new(b"\xff").is_none());
    }
}
