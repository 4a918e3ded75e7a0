//! The relays of a real send: the campaign's `[smtp]` relay (or the server `--smtp` names) and
//! its `[fallback]`, each reached with its own login and the authorities it trusts. Both are
//! refused here, before any connection, when unusable (a username with no password, a
//! `ca_file` that is no certificate). A dry run's relay is the catcher's (`dry_run`).

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;

use crate::app::{Options, Unsendable, trusted_roots};
use crate::campaign::{Campaign, RelaySettings};
use crate::send::Route;
use crate::smtp::{Endpoint, Relay, RelayName};

/// The route of a real send: the primary relay, and the fallback behind it unless `--smtp`
/// names the one server of this run.
pub(super) fn route(campaign: &Campaign, options: &Options) -> anyhow::Result<Route> {
    let endpoint = options.smtp.as_ref().unwrap_or(&campaign.smtp.endpoint);
    let timeout = campaign.smtp_timeout;
    let primary = relay(RelayName::Primary, &campaign.smtp, endpoint, timeout)?;
    let fallback = match &campaign.fallback {
        Some(settings) if options.smtp.is_none() => Some(relay(
            RelayName::Fallback,
            settings,
            &settings.endpoint,
            timeout,
        )?),
        _ => None,
    };
    Ok(Route::new(primary, fallback, campaign.failover.clone()))
}

/// The relay `settings` describe, reached at `endpoint` (theirs, or `--smtp`'s) for a real send:
/// with its login and the certificate authorities it trusts, both refused now if unusable.
pub(super) fn relay(
    name: RelayName,
    settings: &RelaySettings,
    endpoint: &Endpoint,
    timeout: Duration,
) -> anyhow::Result<Relay> {
    let login = credentials(settings.username.as_deref(), settings.password_var)?;
    let roots = trusted_roots(settings.ca_file.as_deref(), &settings.ca_field())?;
    Ok(Relay::new(
        name,
        endpoint,
        login,
        roots.as_deref(),
        timeout,
    )?)
}

/// The login for a real send: the username from the campaign, the password only from the
/// environment. A username without a password refuses the send rather than trying without.
fn credentials(username: Option<&str>, variable: &str) -> anyhow::Result<Option<Credentials>> {
    let Some(username) = username else {
        return Ok(None);
    };
    match std::env::var(variable) {
        Ok(password) if !password.is_empty() => {
            Ok(Some(Credentials::new(username.to_owned(), password)))
        }
        _ => Err(anyhow::Error::new(Unsendable).context(format!(
            "a username is set for the relay but {variable} is empty or unset; refusing to send"
        ))),
    }
}
