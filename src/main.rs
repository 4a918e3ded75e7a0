//! The `missive` binary: parse the arguments, run, turn the result into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    missive::logging::init();
    let options = missive::cli::parse();
    match missive::app::run(options) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("missive: {error:#}");
            missive::app::exit_for_error(&error).into()
        }
    }
}
