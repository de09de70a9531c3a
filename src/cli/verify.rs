//! `tinylm verify`.

use std::process::ExitCode;

use super::{GlobalOpts, open, print_json};
use crate::Result;

/// Arguments of `tinylm verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {}

/// Runs `tinylm verify`: exit 1 if any cache object or placed output is corrupt (a build
/// replaces them: corrupt objects are detected when used and rebuilt).
pub fn run(g: &GlobalOpts, _args: VerifyArgs) -> Result<ExitCode> {
    let report = open(g)?.verify()?;
    let bad = report.cache.corrupt.len() + report.corrupt_outputs.len();
    if g.json {
        print_json(&report);
    } else {
        for p in &report.cache.corrupt {
            eprintln!("corrupt cache object: {}", p.display());
        }
        for p in &report.corrupt_outputs {
            eprintln!("corrupt output: {}", p.display());
        }
        if !g.quiet {
            eprintln!(
                "{} cache objects ({:.1} MiB) and {} outputs checked: {bad} corrupt",
                report.cache.objects,
                report.cache.bytes as f64 / 1048576.0,
                report.outputs
            );
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
