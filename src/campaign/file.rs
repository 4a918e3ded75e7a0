//! `campaign.toml` as written: the TOML's shape, its defaults, and every value checked on its
//! own as it is read (see [`super::value`]). [`super::Campaign::parse`] resolves its paths, makes
//! the checks that need two values, and builds the settings the rest of missive trusts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::send::Failover;
use crate::smtp::Endpoint;

use super::value::{
    AtLeastOne, Delay, DkimDomain, DkimSelector, Id, Language, MailboxText, Mailto, OneLine,
    PoolSize, Preheader, Rate, ReturnPath, SendLogValue, SmtpUrl, Subject, Time, TimeoutSecs,
    UnsubscribeUrl,
};

/// The file as written; turned into a [`Campaign`](super::Campaign) by [`Campaign::load`](super::Campaign::load).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CampaignFile {
    pub(super) id: Id,
    pub(super) from: MailboxText,
    pub(super) reply_to: Option<MailboxText>,
    /// The language of the letter; with `[letters]`, the default letter's.
    pub(super) language: Language,
    /// With `[letters]`, each letter has its own subject, preheader and file instead.
    pub(super) subject: Option<toml::Spanned<Subject>>,
    pub(super) preheader: Option<toml::Spanned<Preheader>>,
    pub(super) letter: Option<toml::Spanned<PathBuf>>,
    /// `[letters.<language>]`: a letter per language, chosen by `language_column`.
    pub(super) letters: Option<BTreeMap<String, toml::Spanned<LetterSection>>>,
    /// The recipient column naming each person's language (`language` by default).
    pub(super) language_column: Option<toml::Spanned<String>>,
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
    pub(super) send_after: Option<Time>,
    /// RFC 3339: past this time `send` sends nothing more (those never attempted expire).
    /// Spanned: it must come after `send_after`.
    pub(super) send_before: Option<toml::Spanned<Time>>,
    /// `[window]`: the days and hours, in a time zone, within which messages go.
    pub(super) window: Option<crate::window::Window>,
    /// The send log: a file (relative to the campaign file) or a PostgreSQL URL.
    pub(super) send_log: Option<SendLogValue>,
    pub(super) unsubscribe: Option<UnsubscribeSection>,
    #[serde(default)]
    pub(super) suppression: SuppressionSection,
    #[serde(default)]
    pub(super) bounces: BouncesSection,
    pub(super) dkim: Option<DkimSection>,
    #[serde(default)]
    pub(super) lints: LintsSection,
    /// Files attached to every message, relative to the campaign file; spanned, so that a path
    /// leaving its folder is named by its line.
    #[serde(default)]
    pub(super) attachments: Vec<toml::Spanned<PathBuf>>,
    /// The recipient column naming each person's own file (same rules as `attachments`).
    pub(super) attachment_column: Option<toml::Spanned<String>>,
}

fn default_name_columns() -> Vec<String> {
    vec!["first_name".into(), "last_name".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FallbackSection {
    pub(super) url: SmtpUrl,
    /// The password comes only from `MISSIVE_FALLBACK_SMTP_PASSWORD`.
    pub(super) username: Option<String>,
    /// While on the fallback, how often to try the primary again (default 30s).
    pub(super) retry_primary_after: Option<Delay>,
    /// Certificate authorities (PEM) to trust for this relay besides the public ones.
    pub(super) ca_file: Option<PathBuf>,
}

/// `[letters.<language>]`: one language's letter, its subject and preheader, and the
/// unsubscribe footer's words in that language (French and English have defaults).
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a [letters.<language>] table with letter, subject and preheader (the column \
                 that chooses is `language_column`, the default letter's language `language`)"
)]
pub(super) struct LetterSection {
    pub(super) letter: PathBuf,
    pub(super) subject: Subject,
    pub(super) preheader: Preheader,
    pub(super) footer: Option<OneLine>,
    pub(super) link_text: Option<OneLine>,
}

/// `[unsubscribe]`: where requests go; the token key comes only from the environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnsubscribeSection {
    pub(super) mailto: Mailto,
    pub(super) url: UnsubscribeUrl,
    /// Default: in the campaign's language, which is known only once the file is read.
    pub(super) footer: Option<OneLine>,
    pub(super) link_text: Option<OneLine>,
}

/// `[suppression]`: files of people never to mail, by reason; each a path or a list of paths.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SuppressionSection {
    pub(super) unsubscribed: Paths,
    pub(super) bounced: Paths,
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

/// `[bounces]`: the envelope sender that makes bounces come back to missive, and when soft
/// bounces add up to a bounced address.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct BouncesSection {
    pub(super) return_path: Option<ReturnPath>,
    /// Soft bounces (mailbox full, server busy) of one address within `soft_days` that put it
    /// on the bounced list.
    pub(super) soft_limit: AtLeastOne,
    pub(super) soft_days: AtLeastOne,
}

impl Default for BouncesSection {
    fn default() -> Self {
        let defaults = super::Bounces::default();
        BouncesSection {
            return_path: None,
            soft_limit: AtLeastOne(defaults.soft_limit),
            soft_days: AtLeastOne(defaults.soft_days),
        }
    }
}

/// `[dkim]`: who signs, and the private key's file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DkimSection {
    pub(super) domain: DkimDomain,
    /// Spanned: its length with the domain's is checked once both are read.
    pub(super) selector: toml::Spanned<DkimSelector>,
    pub(super) key: PathBuf,
}

/// `[lints]`: what `check` lets through.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct LintsSection {
    /// `utm_*` parameters in links tell the site where a reader came from; off unless asked.
    pub(super) allow_utm: bool,
}

/// Durations are written like `5m`, `4h`, `3d`; what is not written is
/// [`RetryPolicy::default`](crate::retry::RetryPolicy)'s.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RetrySection {
    pub(super) max_attempts: Option<AtLeastOne>,
    /// Spanned, as `max_delay`: one must not be shorter than the other.
    pub(super) first_delay: Option<toml::Spanned<Delay>>,
    pub(super) max_delay: Option<toml::Spanned<Delay>>,
    pub(super) give_up_after: Option<Delay>,
}

/// Where a campaign without `[smtp]` or `[dry_run]` delivers: a mailcatcher on this machine.
const MAILCATCHER_PORT: u16 = 1025;

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SmtpSection {
    pub(super) url: SmtpUrl,
    /// The login; the password comes only from `MISSIVE_SMTP_PASSWORD`.
    pub(super) username: Option<String>,
    /// Certificate authorities (PEM) to trust for this relay besides the public ones: an
    /// organization's own relay, signed by its own authority.
    pub(super) ca_file: Option<PathBuf>,
    /// Messages per second; `send --rate` replaces it for one run.
    pub(super) rate: Option<Rate>,
    pub(super) timeout_secs: TimeoutSecs,
    /// SMTP connections (and deliveries) at once.
    pub(super) pool_size: PoolSize,
    /// Messages that may go back to back after a pause. The default, 2, is the least that
    /// keeps the real rate on the configured one: with 1, every late timer wake-up is lost.
    pub(super) burst: AtLeastOne,
    pub(super) per_minute: Option<AtLeastOne>,
    pub(super) per_hour: Option<AtLeastOne>,
    pub(super) per_day: Option<AtLeastOne>,
    /// Failed connections in a row (no message answered between) before a run gives up.
    pub(super) max_connect_failures: AtLeastOne,
}

impl Default for SmtpSection {
    fn default() -> Self {
        Self {
            url: SmtpUrl(Endpoint::loopback(MAILCATCHER_PORT)),
            username: None,
            ca_file: None,
            rate: None,
            timeout_secs: TimeoutSecs(Duration::from_secs(30)),
            pool_size: PoolSize(4),
            burst: AtLeastOne(2),
            per_minute: None,
            per_hour: None,
            per_day: None,
            max_connect_failures: AtLeastOne(Failover::default().max_connect_failures),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct DryRunSection {
    pub(super) smtp: SmtpUrl,
    /// Where the embedded capture server writes `.eml` files when no mailcatcher listens.
    pub(super) outbox: PathBuf,
}

impl Default for DryRunSection {
    fn default() -> Self {
        Self {
            smtp: SmtpUrl(Endpoint::loopback(MAILCATCHER_PORT)),
            outbox: "outbox".into(),
        }
    }
}
