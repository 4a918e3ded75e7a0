//! The campaign file (`campaign.toml`) and its settings.
//!
//! A campaign names everything a send needs: who writes (sender, reply-to), what (subject,
//! preheader, the letter's path), to whom (the recipients' path), and how (the SMTP server, the
//! pace, the dry-run target). Loading it validates every value once, so the rest of missive works
//! with parsed types (`Mailbox`, [`Endpoint`]) and never with raw strings from the file.
//!
//! Relative paths resolve against the campaign file's own directory, so a campaign can be run from
//! anywhere (cron's working directory is rarely the campaign's).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use lettre::message::Mailbox;

use crate::error::{Classify, ErrorKind};
use crate::ratelimit::Limits;
use crate::retry::RetryPolicy;
use crate::send::Failover;
use crate::suppression::Reason;

mod endpoint;
mod file;

pub use endpoint::{Endpoint, EndpointError, Security};
use file::{CampaignFile, DkimSection, MAX_POOL_SIZE, RetrySection, UnsubscribeSection};

/// Why a campaign file could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("cannot read campaign file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown, or a value has the wrong type; `message` comes
    /// from the TOML parser and names the line, column and key.
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: field `{field}`: {problem}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },
}

impl Classify for CampaignError {
    fn kind(&self) -> ErrorKind {
        match self {
            CampaignError::Read { .. }
            | CampaignError::Syntax { .. }
            | CampaignError::Invalid { .. } => ErrorKind::Invalid,
        }
    }
}

/// The unsubscribe settings of a campaign, validated.
#[derive(Debug, Clone)]
pub struct UnsubscribeSettings {
    pub mailto: lettre::Address,
    /// Always `https`, with a host.
    pub url: url::Url,
    /// The footer's words before the link, and the link's words, typeset for the language.
    pub footer: String,
    pub link_text: String,
}

/// The DKIM settings of a campaign; the key is read when a command needs it.
#[derive(Debug, Clone)]
pub struct DkimSettings {
    pub domain: String,
    pub selector: String,
    pub key: PathBuf,
}

/// A loaded, validated campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// The file it came from.
    pub path: PathBuf,
    /// Keys the send log and every Message-ID: changing it makes a new campaign.
    pub id: String,
    pub subject: String,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub language: String,
    pub preheader: String,
    pub letter_path: PathBuf,
    pub recipients_path: PathBuf,
    pub name_columns: Vec<String>,
    pub smtp: Endpoint,
    pub smtp_username: Option<String>,
    /// Certificate authorities (a PEM file) the relay's certificate may chain to, besides the
    /// public ones; read when `send` connects.
    pub smtp_ca: Option<PathBuf>,
    /// The pace and quotas (`smtp.rate`, `burst`, `per_minute`, `per_hour`, `per_day`).
    pub limits: Limits,
    pub fallback: Option<Endpoint>,
    pub fallback_username: Option<String>,
    pub fallback_ca: Option<PathBuf>,
    pub failover: Failover,
    pub send_after: Option<SystemTime>,
    pub smtp_timeout: std::time::Duration,
    pub pool_size: u32,
    pub dry_run_smtp: Endpoint,
    pub outbox: PathBuf,
    pub retry: RetryPolicy,
    /// `None`: messages carry no `List-Unsubscribe` and the letter no unsubscribe footer.
    pub unsubscribe: Option<UnsubscribeSettings>,
    /// Suppression files, in the order they are read.
    pub suppression: Vec<(Reason, PathBuf)>,
    /// `None`: messages are not signed (the relay may sign them).
    pub dkim: Option<DkimSettings>,
    pub allow_utm: bool,
}

impl Campaign {
    /// Reads and validates the campaign file at `path`.
    pub fn load(path: &Path) -> Result<Campaign, CampaignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CampaignError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text` as if read from `path` (which only serves to name errors and resolve
    /// relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Campaign, CampaignError> {
        let file: CampaignFile = toml::from_str(text).map_err(|e| CampaignError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let invalid = |field: &'static str, problem: String| CampaignError::Invalid {
            path: path.to_owned(),
            field,
            problem,
        };
        let base = path.parent().unwrap_or(Path::new("."));

        if file.id.is_empty()
            || !file
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "id",
                format!(
                    "{:?} must be non-empty ASCII letters, digits, '-', '_' or '.' (it goes into Message-IDs)",
                    file.id
                ),
            ));
        }
        for (field, value) in [("subject", &file.subject), ("preheader", &file.preheader)] {
            if value.contains(['\r', '\n']) {
                return Err(invalid(
                    field,
                    "must be one line (no CR or LF: it reaches a header)".into(),
                ));
            }
        }
        if file.subject.trim().is_empty() {
            return Err(invalid("subject", "must not be empty".into()));
        }
        let from = parse_mailbox(&file.from).map_err(|p| invalid("from", p))?;
        let reply_to = file
            .reply_to
            .as_deref()
            .map(parse_mailbox)
            .transpose()
            .map_err(|p| invalid("reply_to", p))?;
        if file.language.is_empty()
            || !file
                .language
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid(
                "language",
                format!("{:?} is not a language tag such as \"fr\"", file.language),
            ));
        }
        let smtp = file
            .smtp
            .url
            .parse()
            .map_err(|e: EndpointError| invalid("smtp.url", e.to_string()))?;
        let dry_run_smtp = file
            .dry_run
            .smtp
            .parse()
            .map_err(|e: EndpointError| invalid("dry_run.smtp", e.to_string()))?;
        if let Some(rate) = file.smtp.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(invalid(
                "smtp.rate",
                format!("{rate} must be a positive number of messages per second"),
            ));
        }
        if !(1..=MAX_POOL_SIZE).contains(&file.smtp.pool_size) {
            return Err(invalid(
                "smtp.pool_size",
                format!(
                    "{} must be between 1 and {MAX_POOL_SIZE}",
                    file.smtp.pool_size
                ),
            ));
        }
        if file.smtp.timeout_secs == 0 {
            return Err(invalid("smtp.timeout_secs", "must be at least 1".into()));
        }

        let retry =
            retry_policy(&file.retry).map_err(|(field, problem)| invalid(field, problem))?;
        for (field, value) in [
            ("smtp.burst", Some(file.smtp.burst)),
            ("smtp.per_minute", file.smtp.per_minute),
            ("smtp.per_hour", file.smtp.per_hour),
            ("smtp.per_day", file.smtp.per_day),
            (
                "smtp.max_connect_failures",
                Some(file.smtp.max_connect_failures),
            ),
        ] {
            if value == Some(0) {
                return Err(invalid(field, "must be at least 1".into()));
            }
        }
        let limits = Limits {
            rate: file.smtp.rate,
            burst: file.smtp.burst,
            per_minute: file.smtp.per_minute,
            per_hour: file.smtp.per_hour,
            per_day: file.smtp.per_day,
        };
        let mut failover = Failover {
            max_connect_failures: file.smtp.max_connect_failures,
            ..Failover::default()
        };
        let (fallback, fallback_username, fallback_ca) = match &file.fallback {
            None => (None, None, None),
            Some(section) => {
                let endpoint = section
                    .url
                    .parse()
                    .map_err(|e: EndpointError| invalid("fallback.url", e.to_string()))?;
                if let Some(text) = &section.retry_primary_after {
                    failover.retry_primary_after = parse_duration(text)
                        .map_err(|p| invalid("fallback.retry_primary_after", p))?;
                }
                let ca = section.ca_file.as_ref().map(|p| base.join(p));
                (Some(endpoint), section.username.clone(), ca)
            }
        };
        let send_after = file
            .send_after
            .as_deref()
            .map(|text| {
                humantime::parse_rfc3339_weak(text).map_err(|_| {
                    invalid(
                        "send_after",
                        format!("{text:?} is not a time such as \"2026-12-01T09:00:00Z\""),
                    )
                })
            })
            .transpose()?;
        let unsubscribe = file
            .unsubscribe
            .map(|section| unsubscribe_settings(section, &file.language))
            .transpose()
            .map_err(|(field, problem)| invalid(field, problem))?;
        let dkim = file
            .dkim
            .map(|section| dkim_settings(section, base))
            .transpose()
            .map_err(|(field, problem)| invalid(field, problem))?;
        let mut suppression = Vec::new();
        for (reason, paths) in [
            (Reason::Unsubscribed, file.suppression.unsubscribed),
            (Reason::Bounced, file.suppression.bounced),
            (Reason::Complained, file.suppression.complained),
        ] {
            suppression.extend(paths.into_vec().into_iter().map(|p| (reason, base.join(p))));
        }

        Ok(Campaign {
            path: path.to_owned(),
            id: file.id,
            subject: file.subject,
            from,
            reply_to,
            language: file.language,
            preheader: file.preheader,
            letter_path: base.join(file.letter),
            recipients_path: base.join(file.recipients),
            name_columns: file.name_columns,
            smtp,
            smtp_username: file.smtp.username,
            smtp_ca: file.smtp.ca_file.map(|p| base.join(p)),
            limits,
            fallback,
            fallback_username,
            fallback_ca,
            failover,
            send_after,
            smtp_timeout: std::time::Duration::from_secs(file.smtp.timeout_secs),
            pool_size: file.smtp.pool_size,
            dry_run_smtp,
            outbox: base.join(file.dry_run.outbox),
            retry,
            unsubscribe,
            suppression,
            dkim,
            allow_utm: file.lints.allow_utm,
        })
    }

    /// The send log's default place: beside the campaign file, named after the campaign id.
    pub fn default_log_path(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{}.sendlog.jsonl", self.id))
    }
}

fn retry_policy(section: &RetrySection) -> Result<RetryPolicy, (&'static str, String)> {
    let mut policy = RetryPolicy::default();
    let duration = |field: &'static str, text: &Option<String>, default| match text {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|problem| (field, problem)),
    };
    policy.first_delay = duration(
        "retry.first_delay",
        &section.first_delay,
        policy.first_delay,
    )?;
    policy.max_delay = duration("retry.max_delay", &section.max_delay, policy.max_delay)?;
    policy.give_up_after = duration(
        "retry.give_up_after",
        &section.give_up_after,
        policy.give_up_after,
    )?;
    if let Some(attempts) = section.max_attempts {
        if attempts == 0 {
            return Err(("retry.max_attempts", "must be at least 1".into()));
        }
        policy.max_attempts = attempts;
    }
    if policy.max_delay < policy.first_delay {
        return Err((
            "retry.max_delay",
            "must not be shorter than retry.first_delay".into(),
        ));
    }
    Ok(policy)
}

/// A positive duration written like `30s`, `5m`, `4h`, `3d`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{text:?} is not a duration such as \"30s\", \"5m\", \"4h\" or \"3d\""
        )),
    }
}

fn unsubscribe_settings(
    section: UnsubscribeSection,
    language: &str,
) -> Result<UnsubscribeSettings, (&'static str, String)> {
    let address = section.mailto.trim().trim_start_matches("mailto:");
    let mailto = address.parse::<lettre::Address>().map_err(|e| {
        (
            "unsubscribe.mailto",
            format!("{address:?} is not an address such as \"desabonnement@example.org\": {e}"),
        )
    })?;
    let url = url::Url::parse(&section.url)
        .ok()
        .filter(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()))
        .filter(|u| u.fragment().is_none())
        .ok_or((
            "unsubscribe.url",
            format!(
                "{:?} is not an https:// address such as \"https://example.org/unsubscribe\" \
                 (mailbox providers only accept HTTPS for one-click unsubscribe)",
                section.url
            ),
        ))?;
    let french = language.split('-').next() == Some("fr");
    let (default_footer, default_link) = if french {
        (
            "Vous ne souhaitez plus recevoir nos lettres ?",
            "Se désabonner en un clic",
        )
    } else {
        (
            "No longer wish to receive our letters?",
            "Unsubscribe in one click",
        )
    };
    let one_line = |field, value: Option<String>, default: &str| {
        let value = value.unwrap_or_else(|| default.to_owned());
        if value.contains(['\r', '\n']) || value.trim().is_empty() {
            return Err((field, "must be one non-empty line".to_owned()));
        }
        Ok(crate::typography::apply(language, value.trim()))
    };
    Ok(UnsubscribeSettings {
        mailto,
        url,
        footer: one_line("unsubscribe.footer", section.footer, default_footer)?,
        link_text: one_line("unsubscribe.link_text", section.link_text, default_link)?,
    })
}

fn dkim_settings(
    section: DkimSection,
    base: &Path,
) -> Result<DkimSettings, (&'static str, String)> {
    let domain = section.domain.trim().trim_end_matches('.').to_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    };
    if !domain.contains('.') || !domain.split('.').all(label_ok) {
        return Err((
            "dkim.domain",
            format!(
                "{:?} is not a domain such as \"example.org\"",
                section.domain
            ),
        ));
    }
    if !section.selector.split('.').all(label_ok) {
        return Err((
            "dkim.selector",
            format!(
                "{:?} is not a selector such as \"missive2026\" (letters, digits, '-', '_')",
                section.selector
            ),
        ));
    }
    Ok(DkimSettings {
        domain,
        selector: section.selector,
        key: base.join(section.key),
    })
}

fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    if text.contains(['\r', '\n']) {
        return Err("must be one line (no CR or LF)".into());
    }
    text.parse::<Mailbox>()
        .map_err(|e| format!("{text:?} is not a mailbox such as \"Name <name@example.org>\": {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
id = "t1"
subject = "Bonjour"
from = "Équipe <dons@example.org>"
language = "fr"
preheader = "p"
letter = "templates/letter.md"
recipients = "recipients/list.csv"
"#;

    #[test]
    fn minimal_campaign_gets_defaults_and_resolves_paths() {
        let c = Campaign::parse(Path::new("/srv/c/campaign.toml"), MINIMAL).unwrap();
        assert_eq!(c.letter_path, Path::new("/srv/c/templates/letter.md"));
        assert_eq!(c.smtp.to_string(), "smtp://127.0.0.1:1025");
        assert_eq!(c.default_log_path(), Path::new("/srv/c/t1.sendlog.jsonl"));
        assert_eq!(c.from.email.to_string(), "dons@example.org");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = format!("{MINIMAL}colour = \"blue\"\n");
        let err = Campaign::parse(Path::new("c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml"), "{err}");
        assert!(err.contains("colour"), "{err}");
        assert!(err.contains("line 9"), "{err}");
    }

    #[test]
    fn header_fields_refuse_newlines() {
        let text = MINIMAL.replace("\"Bonjour\"", "\"Bonjour\\r\\nBcc: x@example.com\"");
        let err = Campaign::parse(Path::new("c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("subject"), "{err}");
    }

    #[test]
    fn retry_settings() {
        let text = format!("{MINIMAL}[retry]\nmax_attempts = 3\nfirst_delay = \"1m\"\n");
        let c = Campaign::parse(Path::new("c.toml"), &text).unwrap();
        assert_eq!(
            (c.retry.max_attempts, c.retry.first_delay.as_secs()),
            (3, 60)
        );
        let text = format!("{MINIMAL}[retry]\ngive_up_after = \"soon\"\n");
        let err = Campaign::parse(Path::new("c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("retry.give_up_after"), "{err}");
    }

    #[test]
    fn deliverability_sections() {
        let text = format!(
            "{MINIMAL}[unsubscribe]\nmailto = \"mailto:stop@example.org\"\nurl = \"https://example.org/stop\"\n\
             [suppression]\nunsubscribed = \"s/unsub.txt\"\nbounced = [\"s/b1.csv\", \"s/b2.txt\"]\n\
             [dkim]\ndomain = \"Example.org\"\nselector = \"s2026\"\nkey = \"keys/dkim.pem\"\n"
        );
        let c = Campaign::parse(Path::new("/srv/c/campaign.toml"), &text).unwrap();
        let u = c.unsubscribe.unwrap();
        assert_eq!(u.mailto.to_string(), "stop@example.org");
        assert_eq!(
            u.footer,
            "Vous ne souhaitez plus recevoir nos lettres\u{202f}?"
        );
        assert_eq!(c.suppression.len(), 3);
        assert_eq!(
            c.suppression[1],
            (Reason::Bounced, PathBuf::from("/srv/c/s/b1.csv"))
        );
        let d = c.dkim.unwrap();
        assert_eq!(
            (d.domain.as_str(), d.key.as_path()),
            ("example.org", Path::new("/srv/c/keys/dkim.pem"))
        );
        assert!(!c.allow_utm);

        let http = format!(
            "{MINIMAL}[unsubscribe]\nmailto = \"a@example.org\"\nurl = \"http://example.org/stop\"\n"
        );
        let err = Campaign::parse(Path::new("c.toml"), &http)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unsubscribe.url") && err.contains("https"),
            "{err}"
        );
    }

    #[test]
    fn endpoints() {
        let e: Endpoint = "smtps://mail.example.org".parse().unwrap();
        assert_eq!((e.security, e.port), (Security::Tls, 465));
        let e: Endpoint = "smtp+starttls://mail.example.org:2525".parse().unwrap();
        assert_eq!((e.security, e.port), (Security::StartTls, 2525));
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
}
