//! The values of `campaign.toml` that are checked as they are read: each a newtype whose
//! `TryFrom` is the check, so that serde refuses a bad value where it stands and the TOML parser
//! knows its line (see [`CampaignError::InvalidAt`](super::CampaignError::InvalidAt)). A check's
//! message says what is wrong and what would be right; the field's name and line are added by
//! [`Campaign::parse`](super::Campaign::parse), which also makes the checks that need two values
//! at once.
//!
//! No message here quotes a password: a URL is shown only as
//! [`mask_credentials`](crate::smtp::mask_credentials) shows it.
//!
//! Over 400 lines because it holds one short newtype a checked value, side by side: splitting
//! them by section would only scatter what is read as a list.

use std::time::{Duration, SystemTime};

use lettre::message::Mailbox;
use serde::Deserialize;

use crate::smtp::{Endpoint, EndpointError};

use super::{MAX_ID_CHARS, MAX_PREHEADER_CHARS, MAX_SUBJECT_CHARS};

/// More connections than this is a flood, not a pace (and most servers refuse it).
pub(super) const MAX_POOL_SIZE: u32 = 64;

/// `id`: 1 to [`MAX_ID_CHARS`] of what a Message-ID can hold unquoted.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Id(pub(super) String);

impl TryFrom<String> for Id {
    type Error = String;

    fn try_from(id: String) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if id.is_empty() || id.len() > MAX_ID_CHARS || !id.chars().all(allowed) {
            return Err(format!(
                "{id:?} must be 1 to {MAX_ID_CHARS} ASCII letters, digits, '-', '_' or '.' (it goes into Message-IDs)"
            ));
        }
        Ok(Id(id))
    }
}

/// `subject`: one line of at most [`MAX_SUBJECT_CHARS`], not blank.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Subject(pub(super) String);

impl TryFrom<String> for Subject {
    type Error = String;

    fn try_from(subject: String) -> Result<Self, String> {
        header_line(&subject, MAX_SUBJECT_CHARS)?;
        if subject.trim().is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Subject(subject))
    }
}

/// `preheader`: one line of at most [`MAX_PREHEADER_CHARS`].
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Preheader(pub(super) String);

impl TryFrom<String> for Preheader {
    type Error = String;

    fn try_from(preheader: String) -> Result<Self, String> {
        header_line(&preheader, MAX_PREHEADER_CHARS)?;
        Ok(Preheader(preheader))
    }
}

/// A value that reaches a header: one line, and a bounded one.
fn header_line(value: &str, max: usize) -> Result<(), String> {
    if value.contains(['\r', '\n']) {
        return Err("must be one line (no CR or LF: it reaches a header)".into());
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(format!(
            "{chars} characters; at most {max} (inboxes show fewer than 140): shorten it"
        ));
    }
    Ok(())
}

/// `from`, `reply_to`: a mailbox such as `Name <name@example.org>`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct MailboxText(pub(super) Mailbox);

impl TryFrom<String> for MailboxText {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text.contains(['\r', '\n']) {
            return Err("must be one line (no CR or LF)".into());
        }
        text.parse::<Mailbox>().map(MailboxText).map_err(|e| {
            format!("{text:?} is not a mailbox such as \"Name <name@example.org>\": {e}")
        })
    }
}

/// `language`: a language tag such as `fr` or `en-GB`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Language(pub(super) String);

impl TryFrom<String> for Language {
    type Error = String;

    fn try_from(tag: String) -> Result<Self, String> {
        if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("{tag:?} is not a language tag such as \"fr\""));
        }
        Ok(Language(tag))
    }
}

/// `smtp.url`, `fallback.url`, `dry_run.smtp`: see [`Endpoint`]'s parsing.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct SmtpUrl(pub(super) Endpoint);

impl TryFrom<String> for SmtpUrl {
    type Error = EndpointError;

    fn try_from(url: String) -> Result<Self, EndpointError> {
        url.parse().map(SmtpUrl)
    }
}

/// `send_log`: a file, or a PostgreSQL URL checked as `--log` would be, without the
/// environment (which completes it only when it is used): a password in it is refused unshown.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct SendLogValue(pub(super) String);

impl TryFrom<String> for SendLogValue {
    type Error = String;

    fn try_from(log: String) -> Result<Self, String> {
        if crate::sendlog::PgTarget::is_url(&log) {
            crate::sendlog::PgTarget::parse(&log, |_| None).map_err(|e| e.to_string())?;
        } else if log.trim().is_empty() {
            return Err("must name a file or a postgres:// URL".into());
        }
        Ok(SendLogValue(log))
    }
}

/// `smtp.rate`: messages per second, more than none.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "f64")]
pub(super) struct Rate(pub(super) f64);

impl TryFrom<f64> for Rate {
    type Error = String;

    fn try_from(rate: f64) -> Result<Self, String> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "{rate} must be a positive number of messages per second"
            ));
        }
        Ok(Rate(rate))
    }
}

/// `smtp.pool_size`: 1 to [`MAX_POOL_SIZE`] connections.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u32")]
pub(super) struct PoolSize(pub(super) u32);

impl TryFrom<u32> for PoolSize {
    type Error = String;

    fn try_from(size: u32) -> Result<Self, String> {
        if !(1..=MAX_POOL_SIZE).contains(&size) {
            return Err(format!("{size} must be between 1 and {MAX_POOL_SIZE}"));
        }
        Ok(PoolSize(size))
    }
}

/// A count that zero would make meaningless: a burst, a quota, a number of attempts.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u32")]
pub(super) struct AtLeastOne(pub(super) u32);

impl TryFrom<u32> for AtLeastOne {
    type Error = &'static str;

    fn try_from(count: u32) -> Result<Self, &'static str> {
        if count == 0 {
            return Err("must be at least 1");
        }
        Ok(AtLeastOne(count))
    }
}

/// `smtp.timeout_secs`: a whole number of seconds, at least 1.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u64")]
pub(super) struct TimeoutSecs(pub(super) Duration);

impl TryFrom<u64> for TimeoutSecs {
    type Error = &'static str;

    fn try_from(seconds: u64) -> Result<Self, &'static str> {
        if seconds == 0 {
            return Err("must be at least 1");
        }
        Ok(TimeoutSecs(Duration::from_secs(seconds)))
    }
}

/// A positive duration written like `30s`, `5m`, `4h`, `3d`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Delay(pub(super) Duration);

impl TryFrom<String> for Delay {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match humantime::parse_duration(&text) {
            Ok(delay) if !delay.is_zero() => Ok(Delay(delay)),
            _ => Err(format!(
                "{text:?} is not a duration such as \"30s\", \"5m\", \"4h\" or \"3d\""
            )),
        }
    }
}

/// `send_after`, `send_before`: a time in RFC 3339, such as `2026-12-01T09:00:00Z` or
/// `2026-12-01T10:00:00+01:00`, quoted or written as a TOML date-time. Its zone is required:
/// an hour without one would be read in UTC, hours away from what its writer meant.
#[derive(Debug, Clone, Copy)]
pub(super) struct Time(pub(super) SystemTime);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let text = match toml::Value::deserialize(deserializer)? {
            toml::Value::String(text) => text,
            // Unquoted, TOML reads it as its own date-time, which is RFC 3339 as well.
            toml::Value::Datetime(time) => time.to_string(),
            other => {
                return Err(D::Error::custom(format!(
                    "{other} is not a time such as \"2026-12-01T09:00:00Z\""
                )));
            }
        };
        Time::try_from(text).map_err(D::Error::custom)
    }
}

impl TryFrom<String> for Time {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let refused = || format!("{text:?} is not a time such as \"2026-12-01T09:00:00Z\"");
        // humantime reads UTC (`Z`) only; an offset, as people in a time zone write it, is
        // taken off here: `10:00:00+01:00` is `09:00:00Z`.
        let (utc, offset) = match text
            .len()
            .checked_sub(6)
            .filter(|at| text.is_char_boundary(*at))
            .map(|at| text.split_at(at))
        {
            Some((time, offset))
                if offset.is_ascii()
                    && matches!(&offset[..1], "+" | "-")
                    && &offset[3..4] == ":" =>
            {
                let number = |digits: &str| match digits.bytes().all(|b| b.is_ascii_digit()) {
                    true => digits.parse::<u64>().map_err(|_| refused()),
                    false => Err(refused()),
                };
                let (hours, minutes) = (number(&offset[1..3])?, number(&offset[4..6])?);
                if hours > 23 || minutes > 59 {
                    return Err(refused());
                }
                let east = &offset[..1] == "+";
                (
                    format!("{time}Z"),
                    Some((east, (hours * 60 + minutes) * 60)),
                )
            }
            _ if text.ends_with('Z') => (text.clone(), None),
            _ => {
                return Err(format!(
                    "{text:?} is not a time such as \"2026-12-01T09:00:00Z\": it names no time \
                     zone; end it with Z for UTC, or with the offset, e.g. +01:00"
                ));
            }
        };
        let local = humantime::parse_rfc3339_weak(&utc).map_err(|_| refused())?;
        let shift = |(east, seconds): (bool, u64)| {
            let by = Duration::from_secs(seconds);
            if east {
                local.checked_sub(by)
            } else {
                local.checked_add(by)
            }
        };
        match offset {
            None => Ok(Time(local)),
            Some(offset) => shift(offset).map(Time).ok_or_else(refused),
        }
    }
}

/// `unsubscribe.mailto`: an address, with or without `mailto:`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Mailto(pub(super) lettre::Address);

impl TryFrom<String> for Mailto {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let address = text.trim().trim_start_matches("mailto:");
        address.parse().map(Mailto).map_err(|e| {
            format!("{address:?} is not an address such as \"desabonnement@example.org\": {e}")
        })
    }
}

/// `bounces.return_path`: an address whose local part can take the per-person VERP tag.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct ReturnPath(pub(super) lettre::Address);

impl TryFrom<String> for ReturnPath {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let address: lettre::Address = text.trim().parse().map_err(|e| {
            format!("{text:?} is not an address such as \"bounces@example.org\": {e}")
        })?;
        crate::verp::Verp::check(&address).map_err(|e| e.to_string())?;
        Ok(ReturnPath(address))
    }
}

/// `unsubscribe.url`: `https` with a host (mailbox providers take nothing else for one-click
/// unsubscribe), without a fragment, and without the parameters each person's link adds.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct UnsubscribeUrl(pub(super) url::Url);

impl TryFrom<String> for UnsubscribeUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let url = url::Url::parse(&text)
            .ok()
            .filter(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()))
            .filter(|u| u.fragment().is_none())
            .ok_or_else(|| {
                format!(
                    "{text:?} is not an https:// address such as \"https://example.org/unsubscribe\" \
                     (mailbox providers only accept HTTPS for one-click unsubscribe)"
                )
            })?;
        if let Some((name, _)) = url
            .query_pairs()
            .find(|(name, _)| crate::unsubscribe::LINK_PARAMS.contains(&name.as_ref()))
        {
            return Err(format!(
                "{text:?} has a `{name}` parameter: each person's link adds `c`, `e` and `t` itself, \
                 and a link with one twice does not verify"
            ));
        }
        Ok(UnsubscribeUrl(url))
    }
}

/// `unsubscribe.footer`, `unsubscribe.link_text`: words of the letter's footer.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct OneLine(pub(super) String);

impl TryFrom<String> for OneLine {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, &'static str> {
        if text.contains(['\r', '\n']) || text.trim().is_empty() {
            return Err("must be one non-empty line");
        }
        Ok(OneLine(text))
    }
}

/// DNS: labels of at most 63 octets (names of at most 253 are checked by their users).
fn dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// `dkim.domain`: a DNS name of two labels or more, kept in lower case without the final dot.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct DkimDomain(pub(super) String);

impl TryFrom<String> for DkimDomain {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let domain = text.trim().trim_end_matches('.').to_lowercase();
        if !domain.contains('.') || domain.len() > 253 || !domain.split('.').all(dns_label) {
            return Err(format!("{text:?} is not a domain such as \"example.org\""));
        }
        Ok(DkimDomain(domain))
    }
}

/// `dkim.selector`: DNS labels. With `._domainkey.` and the domain it must still be a DNS name,
/// which [`Campaign::parse`](super::Campaign::parse) checks once both are known.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct DkimSelector(pub(super) String);

impl DkimSelector {
    /// Why `selector` is refused: a single message, whichever rule it breaks.
    pub(super) fn problem(selector: &str) -> String {
        format!(
            "{selector:?} is not a selector such as \"missive2026\" (letters, digits, '-', '_'; \
             with `._domainkey.` and the domain, a DNS name of at most 253 characters)"
        )
    }

    /// Whether `selector._domainkey.domain` is short enough for DNS.
    pub(super) fn fits(&self, domain: &DkimDomain) -> bool {
        self.0.len() + "._domainkey.".len() + domain.0.len() <= 253
    }
}

impl TryFrom<String> for DkimSelector {
    type Error = String;

    fn try_from(selector: String) -> Result<Self, String> {
        if !selector.split('.').all(dns_label) {
            return Err(DkimSelector::problem(&selector));
        }
        Ok(DkimSelector(selector))
    }
}
