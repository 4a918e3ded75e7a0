//! What a campaign hands the rest of missive for its sections: each relay ([`RelaySettings`],
//! `[smtp]` and `[fallback]`), `[unsubscribe]` and `[bounces]`; and the domain modules' own
//! types built from the file's sections ([`Limits`], [`RetryPolicy`], [`DkimSettings`]), where
//! a pair of values that cannot go together is refused with the span of the one to change.

use std::path::{Path, PathBuf};

use crate::dkim::DkimSettings;
use crate::ratelimit::Limits;
use crate::retry::RetryPolicy;
use crate::smtp::Endpoint;

use super::file::{DkimSection, RetrySection, SmtpSection};
use super::value;

/// The unsubscribe settings of a campaign, validated.
#[derive(Debug, Clone)]
pub struct UnsubscribeSettings {
    pub mailto: lettre::Address,
    /// Always `https`, with a host.
    pub url: url::Url,
    /// The footer's words before the link, and the link's words, typeset for the language (the
    /// default letter's: each of [`Campaign::letters`](super::Campaign::letters) has its own).
    pub footer: String,
    pub link_text: String,
}

/// A relay as the campaign describes it (`[smtp]` or `[fallback]`): what `send` needs to reach
/// it and log in, the password aside, which only the environment holds.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub endpoint: Endpoint,
    /// The login, if the relay takes one.
    pub username: Option<String>,
    /// Certificate authorities (a PEM file) the relay's certificate may chain to, besides the
    /// public ones; read when `send` connects.
    pub ca_file: Option<PathBuf>,
    /// The environment variable holding the password.
    pub password_var: &'static str,
    /// The file's section it comes from (`smtp`, `fallback`): messages name its fields.
    pub section: &'static str,
}

impl RelaySettings {
    /// The field naming the certificate authorities, as messages name it (`smtp.ca_file`).
    pub fn ca_field(&self) -> String {
        format!("{}.ca_file", self.section)
    }
}

/// `[bounces]`: where bounces come back, and the soft-bounce policy of `missive bounces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounces {
    /// With it, each message's envelope sender is this address tagged for its recipient (see
    /// [`crate::verp`]); without it, the envelope sender is `From`'s address, as before.
    pub return_path: Option<lettre::Address>,
    /// Soft bounces of one address within `soft_days` days that make it bounced.
    pub soft_limit: u32,
    pub soft_days: u32,
}

impl Default for Bounces {
    fn default() -> Self {
        // Three soft bounces in a month: a mailbox full for a week is not a dead one, a mailbox
        // that fails every campaign of a month is.
        Bounces {
            return_path: None,
            soft_limit: 3,
            soft_days: 30,
        }
    }
}

impl RelaySettings {
    /// A relay's settings as its section writes them, its certificate authorities' file
    /// resolved against `base`, the campaign's folder.
    pub(super) fn resolve(
        section: &'static str,
        endpoint: Endpoint,
        username: Option<String>,
        ca_file: Option<PathBuf>,
        base: &Path,
        password_var: &'static str,
    ) -> RelaySettings {
        RelaySettings {
            endpoint,
            username,
            ca_file: ca_file.map(|p| base.join(p)),
            password_var,
            section,
        }
    }
}

/// The pace and quotas of `[smtp]`.
pub(super) fn limits(smtp: &SmtpSection) -> Limits {
    Limits {
        rate: smtp.rate.map(|rate| rate.0),
        burst: smtp.burst.0,
        per_minute: smtp.per_minute.map(|n| n.0),
        per_hour: smtp.per_hour.map(|n| n.0),
        per_day: smtp.per_day.map(|n| n.0),
    }
}

/// The retry policy, from [`RetryPolicy::default`] and what the file changes; a refusal carries
/// the span of the value to change.
pub(super) fn retry_policy(
    section: RetrySection,
) -> Result<RetryPolicy, (std::ops::Range<usize>, &'static str, String)> {
    let mut policy = RetryPolicy::default();
    if let Some(attempts) = section.max_attempts {
        policy.max_attempts = attempts.0;
    }
    if let Some(delay) = &section.first_delay {
        policy.first_delay = delay.get_ref().0;
    }
    if let Some(delay) = &section.max_delay {
        policy.max_delay = delay.get_ref().0;
    }
    if let Some(delay) = section.give_up_after {
        policy.give_up_after = delay.0;
    }
    if policy.max_delay < policy.first_delay {
        let problem = "must not be shorter than retry.first_delay".to_owned();
        return Err(match (section.max_delay, section.first_delay) {
            (Some(max), _) => (max.span(), "retry.max_delay", problem),
            // The default maximum: the first delay is the value written.
            (None, first) => (
                first.map(|first| first.span()).unwrap_or_default(),
                "retry.first_delay",
                format!(
                    "must not be longer than retry.max_delay ({})",
                    humantime::format_duration(policy.max_delay)
                ),
            ),
        });
    }
    Ok(policy)
}

/// The DKIM settings; a selector too long with the domain is refused with its span.
pub(super) fn dkim_settings(
    section: DkimSection,
    base: &Path,
) -> Result<DkimSettings, (std::ops::Range<usize>, String)> {
    let span = section.selector.span();
    let selector = section.selector.into_inner();
    if !selector.fits(&section.domain) {
        return Err((span, value::DkimSelector::problem(&selector.0)));
    }
    Ok(DkimSettings {
        domain: section.domain.0,
        selector: selector.0,
        key: base.join(section.key),
    })
}
