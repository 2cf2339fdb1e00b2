//! `tidings check`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, ConfigErrors};

/// `tidings check`: every problem of the configuration at once.
pub fn check(path: Option<&Path>) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            for warning in &config.warnings {
                let text = warning.to_string().replacen(": ", ": warning: ", 1);
                eprintln!("{text}");
            }
            let said = writeln!(
                std::io::stdout().lock(),
                "{}: ok, {} lists ({})",
                config.source,
                config.lists.len(),
                config
                    .lists
                    .iter()
                    .map(|l| l.code.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            super::printed(said)
        }
        Err(error) => {
            match error.downcast_ref::<ConfigErrors>() {
                Some(errors) => {
                    eprintln!("{errors}");
                    eprintln!("{} problem(s) found", errors.0.len());
                }
                None => eprintln!("error: {error:#}"),
            }
            ExitCode::FAILURE
        }
    }
}
