//! `tinylm install` and `tinylm uninstall`.

use std::process::ExitCode;

use super::GlobalOpts;
use crate::Result;

/// Arguments of `tinylm install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {}

/// Arguments of `tinylm uninstall`.
#[derive(Debug, clap::Args)]
pub struct UninstallArgs {}

/// Runs `tinylm install`.
pub fn install(_g: &GlobalOpts, _args: InstallArgs) -> Result<ExitCode> {
    super::not_yet("install")
}

/// Runs `tinylm uninstall`.
pub fn uninstall(_g: &GlobalOpts, _args: UninstallArgs) -> Result<ExitCode> {
    super::not_yet("uninstall")
}
