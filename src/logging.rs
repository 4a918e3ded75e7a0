//! Diagnostics on standard error through `tracing`.
//!
//! Quiet by default (warnings and errors), so cron mails only what matters; `MISSIVE_LOG=debug`
//! shows every outcome. `--log-format json` (or `MISSIVE_LOG_FORMAT=json`) writes one JSON
//! object a line, with timestamps, for log collectors.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the subscriber; call once, first thing in `main`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("MISSIVE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("missive=info,warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes are for terminals, not for files and cron mail.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let json =
        format == LogFormat::Json || std::env::var("MISSIVE_LOG_FORMAT").is_ok_and(|f| f == "json");
    if json {
        builder.json().init();
    } else {
        builder.without_time().init();
    }
}
