//! `tinylm completions SHELL` and `tinylm man`: generated from the clap definition of the
//! command line, so they always match the real flags.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, GlobalOpts};
use crate::{Error, Result};

/// Arguments of `tinylm completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// Shell to write completions for (e.g. `tinylm completions bash > ~/.local/share/bash-completion/completions/tinylm`).
    pub shell: clap_complete::Shell,
}

/// Arguments of `tinylm man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write `tinylm.1` and one page per subcommand (`tinylm-build.1`, …) into DIR instead of
    /// printing `tinylm.1` on stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<std::path::PathBuf>,
}

/// Runs `tinylm completions`: prints the completion script for the shell.
pub fn run(_g: &GlobalOpts, args: CompletionsArgs) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "tinylm", &mut buf);
    write_stdout(&buf)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `tinylm man`: prints the man page (roff), or writes every page into a directory.
pub fn run_man(_g: &GlobalOpts, args: ManArgs) -> Result<ExitCode> {
    let cmd = Cli::command();
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            clap_mangen::generate_to(cmd, &dir).map_err(|e| Error::io(&dir, e))?;
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map_err(|e| Error::Build(format!("rendering the man page: {e}")))?;
            write_stdout(&buf)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("<stdout>", e))
}
