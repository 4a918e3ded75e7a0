//! The `missive` binary: parse the arguments, run, turn the result into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let (options, log_format) = missive::cli::parse();
    missive::logging::init(log_format);
    match missive::app::run(options) {
        Ok(exit) => exit.into(),
        Err(error) => {
            // A path or value the user typed is quoted as typed, and may be a URL with a password.
            let message = missive::smtp::mask_credentials(&describe(&error));
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
