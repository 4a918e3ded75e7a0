//! `campaign.toml` as written: the TOML's shape, with serde's defaults. Nothing here is
//! validated; [`super::Campaign::parse`] turns it into settings the rest of missive trusts.

use std::path::PathBuf;

use serde::Deserialize;

use crate::send::Failover;

/// The file as written; turned into a [`Campaign`](super::Campaign) by [`Campaign::load`](super::Campaign::load).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CampaignFile {
    pub(super) id: String,
    /// Spanned: a value too long is named with its line.
    pub(super) subject: toml::Spanned<String>,
    pub(super) from: String,
    pub(super) reply_to: Option<String>,
    pub(super) language: String,
    pub(super) preheader: toml::Spanned<String>,
    pub(super) letter: PathBuf,
    pub(super) recipients: PathBuf,
    /// Columns joined (with a space) to form the display name in `To`.
    #[serde(default = "default_name_columns")]
    pub(super) name_columns: Vec<String>,
    #[serde(default)]
    pub(super) smtp: SmtpSection,
    #[serde(default)]
    pub(super) dry_run: DryRunSection,
    #[serde(default)]
    pub(super) retry: RetrySection,
    /// A second relay that takes over while the primary is unreachable.
    pub(super) fallback: Option<FallbackSection>,
    /// RFC 3339: `send` does nothing before this time (it exits 75, so cron comes back).
    pub(super) send_after: Option<String>,
    pub(super) unsubscribe: Option<UnsubscribeSection>,
    #[serde(default)]
    pub(super) suppression: SuppressionSection,
    pub(super) dkim: Option<DkimSection>,
    #[serde(default)]
    pub(super) lints: LintsSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FallbackSection {
    pub(super) url: String,
    /// The password comes only from `MISSIVE_FALLBACK_SMTP_PASSWORD`.
    pub(super) username: Option<String>,
    /// While on the fallback, how often to try the primary again (default 30s).
    pub(super) retry_primary_after: Option<String>,
    /// Certificate authorities (PEM) to trust for this relay besides the public ones.
    pub(super) ca_file: Option<PathBuf>,
}

/// `[unsubscribe]`: where requests go; the token key comes only from the environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnsubscribeSection {
    pub(super) mailto: String,
    pub(super) url: String,
    pub(super) footer: Option<String>,
    pub(super) link_text: Option<String>,
}

/// `[suppression]`: files of people never to mail, by reason; each a path or a list of paths.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SuppressionSection {
    #[serde(default)]
    pub(super) unsubscribed: Paths,
    #[serde(default)]
    pub(super) bounced: Paths,
    #[serde(default)]
    pub(super) complained: Paths,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Paths {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl Default for Paths {
    fn default() -> Self {
        Paths::Many(Vec::new())
    }
}

impl Paths {
    pub(super) fn into_vec(self) -> Vec<PathBuf> {
        match self {
            Paths::One(path) => vec![path],
            Paths::Many(paths) => paths,
        }
    }
}

/// `[dkim]`: who signs, and the private key's file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DkimSection {
    pub(super) domain: String,
    pub(super) selector: String,
    pub(super) key: PathBuf,
}

/// `[lints]`: what `check` lets through.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LintsSection {
    /// `utm_*` parameters in links tell the site where a reader came from; off unless asked.
    #[serde(default)]
    pub(super) allow_utm: bool,
}

/// Durations are written like `5m`, `4h`, `3d`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetrySection {
    pub(super) max_attempts: Option<u32>,
    pub(super) first_delay: Option<String>,
    pub(super) max_delay: Option<String>,
    pub(super) give_up_after: Option<String>,
}

fn default_name_columns() -> Vec<String> {
    vec!["first_name".into(), "last_name".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SmtpSection {
    #[serde(default = "default_mailcatcher")]
    pub(super) url: String,
    /// The login; the password comes only from `MISSIVE_SMTP_PASSWORD`.
    pub(super) username: Option<String>,
    /// Certificate authorities (PEM) to trust for this relay besides the public ones: an
    /// organization's own relay, signed by its own authority.
    pub(super) ca_file: Option<PathBuf>,
    /// Messages per second; `send --rate` replaces it for one run.
    pub(super) rate: Option<f64>,
    #[serde(default = "default_timeout_secs")]
    pub(super) timeout_secs: u64,
    /// SMTP connections (and deliveries) at once.
    #[serde(default = "default_pool_size")]
    pub(super) pool_size: u32,
    /// Messages that may go back to back after a pause. The default, 2, is the least that
    /// keeps the real rate on the configured one: with 1, every late timer wake-up is lost.
    #[serde(default = "default_burst")]
    pub(super) burst: u32,
    pub(super) per_minute: Option<u32>,
    pub(super) per_hour: Option<u32>,
    pub(super) per_day: Option<u32>,
    /// Failed connections in a row (no message answered between) before a run gives up.
    #[serde(default = "default_max_connect_failures")]
    pub(super) max_connect_failures: u32,
}

impl Default for SmtpSection {
    fn default() -> Self {
        Self {
            url: default_mailcatcher(),
            username: None,
            ca_file: None,
            rate: None,
            timeout_secs: default_timeout_secs(),
            pool_size: default_pool_size(),
            burst: default_burst(),
            per_minute: None,
            per_hour: None,
            per_day: None,
            max_connect_failures: default_max_connect_failures(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DryRunSection {
    #[serde(default = "default_mailcatcher")]
    pub(super) smtp: String,
    /// Where the embedded capture server writes `.eml` files when no mailcatcher listens.
    #[serde(default = "default_outbox")]
    pub(super) outbox: PathBuf,
}

impl Default for DryRunSection {
    fn default() -> Self {
        Self {
            smtp: default_mailcatcher(),
            outbox: default_outbox(),
        }
    }
}

fn default_mailcatcher() -> String {
    "smtp://127.0.0.1:1025".into()
}
fn default_outbox() -> PathBuf {
    "outbox".into()
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_pool_size() -> u32 {
    4
}
fn default_burst() -> u32 {
    2
}
fn default_max_connect_failures() -> u32 {
    Failover::default().max_connect_failures
}
/// More connections than this is a flood, not a pace (and most servers refuse it).
pub(super) const MAX_POOL_SIZE: u32 = 64;
