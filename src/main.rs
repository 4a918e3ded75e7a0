//! The `missive` binary: parse the arguments, run, turn the result into an exit code. It owns
//! the process: the command line ([`cli`]), the signals that stop a run, and the exit.

mod cli;

use std::process::ExitCode;

use cli::Parsed;
use missive::app::Exit;

fn main() -> ExitCode {
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
