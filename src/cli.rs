//! The command line: clap's definitions, turned into the plain [`Options`] the rest of missive
//! takes. Nothing below this module knows about flags.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::{Command, Options, SendOptions};
use crate::logging::LogFormat;
use crate::send::InDoubt;
use crate::smtp::{Endpoint, mask_credentials};

#[derive(Debug, Parser)]
#[command(
    name = "missive",
    version,
    about = "Mails a personalized letter to a list of people, never twice."
)]
struct Cli {
    #[command(subcommand)]
    command: CliCommand,
    /// How diagnostics on standard error look: text for people, json (one object a line)
    /// for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    log_format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InDoubtChoice {
    /// Send them again with the same Message-ID (the receiving side can spot the duplicate).
    Resend,
    /// Assume they arrived and never send them again.
    Skip,
}

#[derive(Debug, Subcommand)]
enum CliCommand {
    /// Load everything, render every message without sending, report every problem.
    Check(Common),
    /// Write the rendered message(s) as .eml, .html and .txt files.
    Preview {
        #[command(flatten)]
        common: Common,
        /// Folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Only this recipient's message.
        #[arg(long)]
        recipient: Option<String>,
    },
    /// Send the campaign, resuming from the send log.
    Send {
        #[command(flatten)]
        common: Common,
        /// Deliver everything to the local mailcatcher instead; never touches the real send log.
        #[arg(long)]
        dry_run: bool,
        /// Stop after this many messages (a cron run's budget).
        #[arg(long, value_name = "N")]
        max_messages: Option<u64>,
        /// Stop taking new recipients after this long, e.g. 10m, 1h30m.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        max_duration: Option<Duration>,
        /// Messages per second for this run, replacing the campaign's.
        #[arg(long, value_name = "N", value_parser = parse_rate)]
        rate: Option<f64>,
        /// Send the letter as it is now, although the log shows an earlier version was sent.
        #[arg(long)]
        allow_changed_letter: bool,
        /// Messages an earlier run handed over without getting a reply.
        #[arg(long, value_enum, default_value_t = InDoubtChoice::Resend)]
        in_doubt: InDoubtChoice,
        /// Send with this --log although the campaign has been sending with another one
        /// (everyone this log does not list is mailed).
        #[arg(long)]
        new_log: bool,
    },
    /// What the send log says: sent, failed, to retry, in doubt, not yet attempted.
    Status {
        #[command(flatten)]
        common: Common,
        /// One JSON object, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Unsubscribe links, for the organization's web endpoint.
    #[command(name = "unsubscribe-token", subcommand)]
    UnsubscribeToken(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Check an unsubscribe link with MISSIVE_UNSUBSCRIBE_SECRET; prints whom it unsubscribes.
    /// Exit 0 when the token is valid, 1 when it is not.
    Verify {
        /// The link as the endpoint received it (or only its query string).
        link: String,
        /// One JSON object: {"valid": …, "campaign": …, "address": …}.
        #[arg(long)]
        json: bool,
    },
}

/// Options every command that reads a campaign accepts.
#[derive(Debug, Args)]
struct Common {
    /// The campaign file.
    #[arg(default_value = "campaign.toml")]
    campaign: PathBuf,
    /// Use this recipient file instead of the campaign's.
    #[arg(long, value_name = "PATH")]
    recipients: Option<PathBuf>,
    /// Use this SMTP server (smtp://, smtp+starttls://, smtps://); with --dry-run, the mailcatcher.
    #[arg(long, value_name = "URL", value_parser = EndpointArg)]
    smtp: Option<Endpoint>,
    /// Use this send log instead of the one beside the campaign.
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,
}

/// Parses the process's arguments. `--help` and `--version` print and exit 0; a usage error
/// prints and exits 1, the contract's "any other error" (clap's own default would be 2).
pub fn parse() -> (Options, LogFormat) {
    let cli = Cli::try_parse().unwrap_or_else(|error| {
        if !error.use_stderr() {
            let _ = error.print();
            std::process::exit(0);
        }
        // clap quotes a stray argument as typed (`--smtp` forgotten before a URL, a misspelt
        // option): it may hold a password. Plain text, then: colors would not survive masking.
        eprint!("{}", mask_credentials(&error.render().to_string()));
        std::process::exit(1);
    });
    let format = match cli.log_format {
        Format::Text => LogFormat::Text,
        Format::Json => LogFormat::Json,
    };
    let (common, command) = match cli.command {
        CliCommand::Check(common) => (common, Command::Check),
        CliCommand::Preview {
            common,
            out,
            recipient,
        } => (common, Command::Preview { out, recipient }),
        CliCommand::Send {
            common,
            dry_run,
            max_messages,
            max_duration,
            rate,
            allow_changed_letter,
            in_doubt,
            new_log,
        } => (
            common,
            Command::Send(SendOptions {
                dry_run,
                limits: crate::send::RunLimits {
                    max_messages,
                    max_duration,
                    rate,
                },
                allow_changed_letter,
                in_doubt: match in_doubt {
                    InDoubtChoice::Resend => InDoubt::Resend,
                    InDoubtChoice::Skip => InDoubt::Skip,
                },
                new_log,
            }),
        ),
        CliCommand::Status { common, json } => (common, Command::Status { json }),
        CliCommand::UnsubscribeToken(TokenCommand::Verify { link, json }) => {
            let options = Options {
                campaign: PathBuf::from("campaign.toml"),
                recipients: None,
                smtp: None,
                log: None,
                command: Command::VerifyUnsubscribe { link, json },
            };
            return (options, format);
        }
    };
    let options = Options {
        campaign: common.campaign,
        recipients: common.recipients,
        smtp: common.smtp,
        log: common.log,
        command,
    };
    (options, format)
}

/// `--smtp`'s parser. Not clap's `FromStr` adapter: its error quotes the value as typed, and a
/// refused URL may hold a password; [`Endpoint`]'s own errors never do.
#[derive(Clone)]
struct EndpointArg;

impl TypedValueParser for EndpointArg {
    type Value = Endpoint;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Endpoint, clap::Error> {
        let option = arg.map_or_else(|| "--smtp".to_owned(), ToString::to_string);
        let refuse = |problem: String| {
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid value for '{option}': {problem}"),
            )
            .format(&mut command.clone())
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("not UTF-8 text".into()))?;
        text.parse()
            .map_err(|e: crate::smtp::EndpointError| refuse(e.to_string()))
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 90s, 10m, 1h30m)"))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err("a positive number of messages per second".into()),
    }
}
