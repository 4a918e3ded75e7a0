//! Diagnostics on standard error through `tracing`.
//!
//! Quiet by default (warnings and errors, plus one line per run), so cron mails only what
//! matters; `MISSIVE_LOG=debug` shows every outcome, and `MISSIVE_LOG_FORMAT=json` writes one
//! JSON object a line for log collectors.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber; call once, first thing in `main`.
pub fn init() {
    let filter = EnvFilter::try_from_env("MISSIVE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("missive=info,warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if std::env::var("MISSIVE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.without_time().init();
    }
}
