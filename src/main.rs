//! The `missive` binary: parse the arguments, run, turn the result into an exit code. It owns
//! the process: the command line ([`cli`]), the signals that stop a run, and the exit.

mod cli;

use std::process::ExitCode;

use cli::Parsed;
use missive::app::Exit;

fn main() -> ExitCode {
    quiet_on_a_closed_pipe();
    let (options, log_format) = match cli::parse(std::env::args_os()) {
        Parsed::Run(options, log_format) => (options, log_format),
        Parsed::Info(info) => {
            let _ = info.print();
            return ExitCode::SUCCESS;
        }
        Parsed::Usage(message) => {
            eprint!("{message}");
            return Exit::Failure.into();
        }
    };
    missive::logging::init(log_format);
    match missive::app::run(options, shutdown_on_signals()) {
        Ok(exit) => exit.into(),
        Err(error) => {
            // A path or value the user typed is quoted as typed, and may be a URL with a password.
            let args: Vec<_> = std::env::args_os().collect();
            let message = cli::mask_typed(&describe(&error), &args);
            eprintln!("missive: {message}");
            missive::app::exit_for_error(&error).into()
        }
    }
}

/// Output to a pipe closed early (`missive status | head -3`) ends the command quietly with
/// 141, what a shell reports for `cat` ended by SIGPIPE, rather than in a panic's backtrace
/// (101). Rust ignores SIGPIPE, and rightly here: a relay or a database that hangs up must be
/// an error the run handles, not the end of a send. So a print to a closed pipe panics, and
/// that one panic is turned into the quiet exit. A send prints its report only once every
/// record is durable, so nothing it must keep is cut short.
fn quiet_on_a_closed_pipe() {
    let panicked = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(CLOSED_PIPE);
        }
        panicked(info);
    }));
}

/// 128 + SIGPIPE, as a shell reports a command that SIGPIPE ended.
const CLOSED_PIPE: i32 = 141;

/// The error and its causes, each once: a cause whose words its parent already quotes (as
/// `thiserror` messages often do) is not repeated.
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Resolves at the first SIGINT or SIGTERM: a command that runs until told to stop (a send)
/// finishes the work in hand and takes no more. The signals are caught from the first poll,
/// inside the command's runtime, so a command that never polls it (`check`) keeps the default
/// handling.
///
/// A second signal exits at once with 75: every record acknowledged so far is already durable,
/// and messages cut off after DATA are in doubt, which the next run handles.
async fn shutdown_on_signals() {
    let (first, fired) = tokio::sync::oneshot::channel();
    // Listens for as long as the runtime lives, after the command dropped this future too.
    tokio::spawn(async move {
        let mut first = Some(first);
        #[cfg(unix)]
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            #[cfg(unix)]
            let terminated = async {
                match terminate.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let terminated = std::future::pending::<()>();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = terminated => {}
            }
            if let Some(first) = first.take() {
                tracing::warn!(
                    "signal received: finishing the work in hand (messages being sent, requests being \
                     answered), then stopping (again to stop now)"
                );
                let _ = first.send(());
            } else {
                tracing::warn!(
                    "second signal: stopping now; a message cut off is in doubt, a request cut \
                     off gets no answer"
                );
                std::process::exit(Exit::TryAgain as i32);
            }
        }
    });
    if fired.await.is_err() {
        // The listener is gone (the runtime is shutting down): that is no signal.
        std::future::pending::<()>().await;
    }
}
