//! Command-line interface.

use std::process::ExitCode;

/// Entry point of the `tinylm` binary.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
