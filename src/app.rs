//! The commands: `check`, `preview`, `send`, `status`, `serve` and `bounces`, each a plain
//! function of [`Options`].
//!
//! This is the edge where errors get their context (`anyhow`) and outcomes become [`Exit`]
//! codes that cron reads: 0 done, 75 run again later, 65 the campaign cannot be sent as it
//! stands, 1 anything else.
//!
//! Each command lives in a file of its own, and loading a campaign once for any of them in
//! [`load`]; this one dispatches, and keeps what several share.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lettre::transport::smtp::client::{Certificate, TlsParameters};

use crate::sendlog::Replay;
use crate::smtp::Endpoint;
use crate::unsubscribe::Secret;

mod bounces;
mod check;
mod exit;
mod load;
mod log_place;
mod move_log;
mod prepare;
mod preview;
mod sending;
mod serve;
mod status;

pub use bounces::bounce_log_path;
pub use exit::{Exit, Unsendable, exit_for_error};
pub use load::read_attachments;
use load::{Loaded, secret_users, unsubscribe};
use log_place::send_log;
pub use prepare::prepare;
pub use sending::{FALLBACK_PASSWORD_VAR, PASSWORD_VAR, SendOptions, TestSend};

/// What to do, with every option resolved.
#[derive(Debug)]
pub struct Options {
    pub campaign: PathBuf,
    pub recipients: Option<PathBuf>,
    pub smtp: Option<Endpoint>,
    pub log: Option<PathBuf>,
    pub command: Command,
}

#[derive(Debug)]
pub enum Command {
    Check,
    Preview {
        out: PathBuf,
        recipient: Option<String>,
    },
    Send(SendOptions),
    Status {
        json: bool,
    },
    /// Read bounces and complaints from these files, folders, or `-` (standard input; also
    /// when none is given).
    Bounces {
        paths: Vec<PathBuf>,
        json: bool,
    },
    /// Copy the campaign's file log into a database and send with the database from now on.
    LogImport {
        from: Option<PathBuf>,
        to: String,
    },
    /// Copy the campaign's database log into a new file log.
    LogExport {
        from: Option<String>,
        to: PathBuf,
    },
    /// Check an unsubscribe link; needs no campaign.
    VerifyUnsubscribe {
        link: String,
        json: bool,
    },
    /// Answer these campaigns' unsubscribe links over HTTP until `shutdown`.
    Serve {
        campaigns: Vec<PathBuf>,
        listen: std::net::SocketAddr,
    },
}

/// The certificate authorities a campaign's `field` names (a PEM file), for a relay's TLS.
pub(super) fn trusted_roots(path: Option<&Path>, field: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let unsendable = |problem: String| {
        anyhow::Error::new(Unsendable).context(format!("{field} {}: {problem}", path.display()))
    };
    let pem = std::fs::read(path).map_err(|e| unsendable(format!("cannot read it: {e}")))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(unsendable(
            "no PEM certificate in it (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    // Built once here as a relay would build it, so that a damaged file is named now.
    Certificate::from_pem(&pem)
        .and_then(|authority| {
            TlsParameters::builder("localhost".into())
                .add_root_certificate(authority)
                .build_rustls()
        })
        .map_err(|e| unsendable(format!("not a usable certificate: {e}")))?;
    Ok(Some(pem))
}

/// Runs one command. `shutdown` resolving asks a running `send` to stop (the binary makes it
/// of SIGINT and SIGTERM): the messages in hand finish, the rest wait for the next run. The
/// other commands never poll it.
pub fn run(
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Exit> {
    if let Command::VerifyUnsubscribe { link, json } = &options.command {
        return verify_unsubscribe(link, *json);
    }
    if let Command::Serve { campaigns, listen } = &options.command {
        return serve::serve(campaigns, *listen, shutdown);
    }
    let loaded = match Loaded::load(&options) {
        Ok(loaded) => loaded,
        Err(error) if matches!(options.command, Command::Check) => {
            return check::report_unloadable(&options, error);
        }
        Err(error) => return Err(error),
    };
    match &options.command {
        Command::Check => check::check(&loaded),
        Command::Preview { out, recipient } => preview::preview(&loaded, out, recipient.as_deref()),
        Command::Send(send) => {
            // One thread renders and drives every connection; the send log has its own. Passing
            // each reply and each message from thread to thread cost more than handling them
            // (measured with bench/run.sh: the multi-threaded runtime sent 10-20 % less).
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(sending::send(&loaded, &options, send, shutdown))
        }
        Command::Status { json } => status::status(&loaded, &options, *json),
        Command::Bounces { paths, json } => bounces::bounces(&loaded, paths, *json),
        Command::LogImport { from, to } => move_log::import(&loaded, &options, from.as_deref(), to),
        Command::LogExport { from, to } => move_log::export(&loaded, &options, from.as_deref(), to),
        Command::VerifyUnsubscribe { .. } | Command::Serve { .. } => {
            unreachable!("answered before loading")
        }
    }
}

/// `unsubscribe-token verify`: 0 and whom the link unsubscribes, or 1 and why not.
fn verify_unsubscribe(link: &str, json: bool) -> anyhow::Result<Exit> {
    let secret = Secret::from_env().context("cannot verify unsubscribe links")?;
    let outcome = crate::unsubscribe::verify_link(&secret, link);
    if json {
        let value = match &outcome {
            Ok(v) => {
                serde_json::json!({"valid": true, "campaign": v.campaign_id, "address": v.address})
            }
            Err(e) => serde_json::json!({"valid": false, "error": e.to_string()}),
        };
        println!("{value}");
    }
    match outcome {
        Ok(verified) => {
            if !json {
                println!(
                    "valid: unsubscribe {} from campaign {}",
                    verified.address, verified.campaign_id
                );
            }
            Ok(Exit::Done)
        }
        Err(error) => {
            if !json {
                eprintln!("invalid: {error}");
            }
            Ok(Exit::Failure)
        }
    }
}

/// True when the log shows attempts, and none of them of this letter.
fn letter_changed(replay: &Replay, fingerprint: &str) -> bool {
    !replay.letters().is_empty() && !replay.letters().contains(fingerprint)
}
