//! The `missive` binary: parse the arguments, run, turn the result into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let (options, log_format) = missive::cli::parse();
    missive::logging::init(log_format);
    match missive::app::run(options) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("missive: {error:#}");
            missive::app::exit_for_error(&error).into()
        }
    }
}
