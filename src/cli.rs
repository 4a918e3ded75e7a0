//! The command line: clap's definitions, turned into the plain [`Options`] the library takes.
//! A module of the binary, not of the library: nothing in `missive` knows about flags. What
//! the arguments ask for comes back as a value ([`Parsed`]), help, version and usage errors
//! included; only `main` prints them and ends the process.

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand, ValueEnum};

use missive::app::{Command, Options, SendOptions, TestSend};
use missive::logging::LogFormat;
use missive::send::{InDoubt, RunLimits};
use missive::smtp::{Endpoint, EndpointError, mask_credentials, mask_url};

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
        /// Mail the letter to these addresses only (comma-separated), subject marked [TEST]:
        /// no send log read or written, no quota charged.
        #[arg(
            long,
            value_name = "ADDRESS,...",
            value_delimiter = ',',
            conflicts_with = "dry_run"
        )]
        test: Option<Vec<String>>,
        /// With --test: render the row of this recipient (default: the first valid row).
        #[arg(long = "as", value_name = "EMAIL", requires = "test")]
        test_as: Option<String>,
    },
    /// What the send log says: sent, failed, to retry, in doubt, not yet attempted.
    Status {
        #[command(flatten)]
        common: Common,
        /// One JSON object, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Read bounces (DSNs) and complaints (ARF) and update the suppression lists.
    Bounces {
        #[command(flatten)]
        common: Common,
        /// Files of one message, mbox files, Maildir folders, or - for standard input (the
        /// default when none is given and standard input is not a terminal).
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// One JSON object a line per message read.
        #[arg(long)]
        json: bool,
    },
    /// Answer the campaigns' one-click unsubscribe links over HTTP, until SIGINT or SIGTERM.
    Serve {
        /// The campaign files (each needs an [unsubscribe] section).
        #[arg(default_value = "campaign.toml")]
        campaigns: Vec<PathBuf>,
        /// Address and port to listen on; port 0 picks a free one. The first line on standard
        /// output says which.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8025")]
        listen: SocketAddr,
    },
    /// Move a campaign's send log in flight: from a file into PostgreSQL, or back.
    #[command(subcommand)]
    Log(LogCommand),
    /// Unsubscribe links, for the organization's web endpoint.
    #[command(name = "unsubscribe-token", subcommand)]
    UnsubscribeToken(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Copy the campaign's file log into a PostgreSQL database, which the campaign then sends
    /// with (several senders may share it). Nobody is mailed twice: what the file says sent
    /// stays sent, its in-doubt messages are resent with the same Message-ID.
    Import {
        /// The campaign file.
        #[arg(default_value = "campaign.toml")]
        campaign: PathBuf,
        /// The file log (default: the one the campaign has been sending with).
        #[arg(long, value_name = "PATH")]
        from: Option<PathBuf>,
        /// The database (postgres://user@host:port/db, the password in PGPASSWORD).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Copy the campaign's database log into a new file log (send with it later with
    /// `send --log FILE --new-log`).
    Export {
        /// The campaign file.
        #[arg(default_value = "campaign.toml")]
        campaign: PathBuf,
        /// The database (default: the one the campaign has been sending with).
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// The new file log.
        #[arg(long, value_name = "PATH")]
        to: PathBuf,
    },
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
    /// Use this send log instead of the campaign's: a file, or a PostgreSQL database
    /// (postgres://user@host:port/db, the password in PGPASSWORD).
    #[arg(long, value_name = "PATH|URL")]
    log: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug)]
// Made once a process: boxing the options would only move them.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// Run this command, with diagnostics in this format.
    Run(Options, LogFormat),
    /// `--help` or `--version`: clap's text, for standard output, and exit 0. Kept as clap's
    /// value so that it prints as clap prints it (in colour on a terminal).
    Info(clap::Error),
    /// A usage error, for standard error, and exit 1: the contract's "any other error" (clap's
    /// own default would be 2). Plain text, with any credentials masked.
    Usage(String),
}

/// `text` with every credential masked: those of the URLs among `args` (whole, as typed: a
/// password may hold a space or a quote, where [`mask_credentials`] alone would cut the URL),
/// then any other that looks like one.
pub fn mask_typed(text: &str, args: &[OsString]) -> String {
    let mut text = text.to_owned();
    for arg in args {
        let arg = arg.to_string_lossy();
        // `--option=URL` is quoted whole or by its value alone.
        let value = arg.split_once('=').map(|(_, value)| value);
        for typed in std::iter::once(arg.as_ref()).chain(value) {
            if let Some(shown) = mask_url(typed) {
                text = text.replace(typed, &shown);
            }
        }
    }
    mask_credentials(&text)
}

/// Parses `args` (the program's name first, as [`std::env::args_os`] gives them).
pub fn parse<I, T>(args: I) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => return Parsed::Info(error),
        // clap quotes a stray argument as typed (`--smtp` forgotten before a URL, a misspelt
        // option): it may hold a password. Plain text, then: colors would not survive masking.
        Err(error) => return Parsed::Usage(mask_typed(&error.render().to_string(), &args)),
    };
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
            test,
            test_as,
        } => (
            common,
            Command::Send(SendOptions {
                dry_run,
                limits: RunLimits {
                    max_messages,
                    max_duration,
                    rate,
                    ..RunLimits::default()
                },
                allow_changed_letter,
                in_doubt: match in_doubt {
                    InDoubtChoice::Resend => InDoubt::Resend,
                    InDoubtChoice::Skip => InDoubt::Skip,
                },
                new_log,
                test: test.map(|addresses| TestSend {
                    addresses,
                    as_email: test_as,
                }),
            }),
        ),
        CliCommand::Status { common, json } => (common, Command::Status { json }),
        CliCommand::Bounces {
            common,
            paths,
            json,
        } => (common, Command::Bounces { paths, json }),
        CliCommand::UnsubscribeToken(TokenCommand::Verify { link, json }) => {
            let options = Options {
                campaign: PathBuf::from("campaign.toml"),
                recipients: None,
                smtp: None,
                log: None,
                command: Command::VerifyUnsubscribe { link, json },
            };
            return Parsed::Run(options, format);
        }
        CliCommand::Log(log) => {
            let (campaign, command) = match log {
                LogCommand::Import { campaign, from, to } => {
                    (campaign, Command::LogImport { from, to })
                }
                LogCommand::Export { campaign, from, to } => {
                    (campaign, Command::LogExport { from, to })
                }
            };
            let options = Options {
                campaign,
                recipients: None,
                smtp: None,
                log: None,
                command,
            };
            return Parsed::Run(options, format);
        }
        CliCommand::Serve { campaigns, listen } => {
            let options = Options {
                campaign: campaigns[0].clone(),
                recipients: None,
                smtp: None,
                log: None,
                command: Command::Serve { campaigns, listen },
            };
            return Parsed::Run(options, format);
        }
    };
    let options = Options {
        campaign: common.campaign,
        recipients: common.recipients,
        smtp: common.smtp,
        log: common.log,
        command,
    };
    Parsed::Run(options, format)
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
            .map_err(|e: EndpointError| refuse(e.to_string()))
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

#[cfg(test)]
mod tests;
