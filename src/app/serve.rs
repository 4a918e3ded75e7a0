//! `missive serve`: the campaigns named become the endpoint's [`Site`]s, the listening socket
//! is bound here (so a port in use is an error of the command, before anything starts), and
//! [`crate::serve`] answers on it until the binary's shutdown future resolves.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Exit, Unsendable};
use crate::campaign::Campaign;
use crate::serve::{PageText, ServeError, Server, Site};
use crate::suppression::Reason;
use crate::unsubscribe::Secret;

/// Serves `campaigns` on `listen` until `shutdown`. The first line on standard output says
/// where it listens (`listening on http://127.0.0.1:8025`), the port chosen when `listen`
/// asked for port 0.
pub(super) fn serve(
    campaigns: &[PathBuf],
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Exit> {
    let secret = Secret::from_env().map_err(|problem| {
        anyhow::Error::new(Unsendable).context(format!(
            "{problem}: the endpoint cannot tell real links from forged ones without it"
        ))
    })?;
    let sites = campaigns
        .iter()
        .map(|path| site(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let described: Vec<String> = sites
        .iter()
        .map(|site| {
            format!(
                "campaign {} ({}) at {}, unsubscribes to {}",
                site.campaign_id,
                site.text.language,
                site.path,
                site.unsubscribed.display()
            )
        })
        .collect();
    let server = Server::new(sites, secret).map_err(|error| match error {
        // Its own type, so that an unreadable list ends with 65 as in every other command.
        ServeError::Suppression(error) => anyhow::Error::new(error),
        other => anyhow::Error::new(other),
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = listen_on(listen).with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener
            .local_addr()
            .context("cannot read the bound address")?;
        for line in &described {
            tracing::info!("{line}");
        }
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "listening on http://{bound}");
        let _ = stdout.flush();
        server.run(listener, shutdown).await;
        anyhow::Ok(())
    })?;
    Ok(Exit::Done)
}

/// A listening socket with a backlog for bursts (std's is 128: a thousand people clicking at
/// once would wait for SYN retransmits, a second or more).
fn listen_on(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(4096)
}

/// What the endpoint needs of one campaign, which must have an `[unsubscribe]` section.
fn site(path: &Path) -> anyhow::Result<Site> {
    let campaign = Campaign::load(path)?;
    let Some(unsubscribe) = &campaign.unsubscribe else {
        return Err(anyhow::Error::new(Unsendable).context(format!(
            "{}: no [unsubscribe] section, so no link to answer; add one with the `url` \
             the endpoint is reached at",
            campaign.path.display()
        )));
    };
    let contact = campaign.reply_to.as_ref().unwrap_or(&campaign.from);
    let organization = campaign
        .from
        .name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| campaign.from.email.to_string());
    Ok(Site {
        campaign_id: campaign.id.clone(),
        path: unsubscribe.url.path().to_owned(),
        text: PageText {
            language: campaign.language.clone(),
            organization,
            contact: contact.email.to_string(),
        },
        unsubscribed: campaign.suppression_file(Reason::Unsubscribed),
    })
}
