//! Command-line interface: global options, subcommand dispatch, logging and exit codes.
//!
//! Each subcommand lives in its own file with a clap `Args` struct and a `run` function that
//! turns arguments into a library call (mostly a [`Workspace`] method) and prints the result.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::Result;
use crate::manifest::find_manifest;
use crate::workspace::{RemoteOverride, Workspace};

mod build;
mod cache;
mod clean;
mod completions;
mod convert;
mod download;
mod eval;
mod gc;
mod graph;
mod imatrix;
mod init;
mod inspect;
mod install;
mod lint;
mod log;
mod quantize;
mod run;
mod schema;
mod status;
mod template;
mod uninstall;
mod verify;

/// tinylm: build small language models into GGUFs, quants, Modelfiles and releases.
#[derive(Debug, Parser)]
#[command(name = "tinylm", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct GlobalOpts {
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Path of the manifest (default: tinylm.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest: Option<PathBuf>,
    /// Cache directory (overrides [cache] dir in the manifest).
    #[arg(long, global = true, value_name = "DIR", env = "TINYLM_CACHE")]
    pub cache: Option<PathBuf>,
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only print errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Colour diagnostics: auto (a terminal, unless NO_COLOR is set), always, never.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value = "auto"
    )]
    pub color: log::ColorChoice,
    /// Remote cache: http(s)://host/prefix, s3://, gs:// or az:// (overrides [cache] remote;
    /// `none` turns it off).
    #[arg(long, global = true, value_name = "URL", env = "TINYLM_REMOTE_CACHE")]
    pub remote_cache: Option<String>,
    /// Upload what this machine builds to the remote cache (overrides [cache] upload).
    #[arg(long, global = true, value_name = "BOOL", env = "TINYLM_REMOTE_UPLOAD",
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub remote_upload: Option<bool>,
    /// Never download sources: `source.hf` repositories come from the Hugging Face cache only
    /// (also `HF_HUB_OFFLINE=1`).
    #[arg(long, global = true)]
    pub offline: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build targets (default: everything in the manifest).
    Build(build::BuildArgs),
    /// Show what is stale and why.
    Status(status::StatusArgs),
    /// Print the build graph.
    Graph(graph::GraphArgs),
    /// Remove the outputs tinylm placed (with --all, the cache too).
    Clean(clean::CleanArgs),
    /// Drop cache objects no project's lock file needs.
    Gc(gc::GcArgs),
    /// Sync with the remote cache (push, pull) and show cache statistics.
    Cache(cache::CacheArgs),
    /// Write a starter tinylm.toml.
    Init(init::InitArgs),
    /// Print the JSON schema of tinylm.toml.
    Schema(schema::SchemaArgs),
    /// Convert one model without a manifest (checkpoint → HF, HF/checkpoint → GGUF).
    Convert(convert::ConvertArgs),
    /// Describe a model file (.ckpt/.pt/.bin/.safetensors/.gguf/tokenizer.pkl).
    Inspect(inspect::InspectArgs),
    /// Quantize a GGUF file.
    Quantize(quantize::QuantizeArgs),
    /// Perplexity of a GGUF on a text, and KL-divergence against a base GGUF.
    Eval(eval::EvalArgs),
    /// Generate text with a GGUF (greedy by default; --chat renders the chat template).
    Run(run::RunArgs),
    /// Compute an importance matrix (llama-imatrix's GGUF or .dat format).
    Imatrix(imatrix::ImatrixArgs),
    /// Chat template library: list, show, detect.
    Template(template::TemplateArgs),
    /// Check templates, stop tokens and tokenizers of built models.
    Lint(lint::LintArgs),
    /// Install a built model into Ollama or LM Studio.
    Install(install::InstallArgs),
    /// Remove a model installed by tinylm.
    Uninstall(uninstall::UninstallArgs),
    /// Rehash every cache object and placed output; exit 1 if any is corrupt.
    Verify(verify::VerifyArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), or write every page into a directory.
    Man(completions::ManArgs),
}

/// Entry point of the `tinylm` binary.
pub fn main() -> ExitCode {
    restore_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version on stdout with exit 0 and usage errors with exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(&cli.global);
    if let Some(dir) = &cli.global.dir
        && let Err(e) = std::env::set_current_dir(dir)
    {
        eprintln!("error: cannot change to {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let json = cli.global.json;
    let ansi = cli.global.color.enabled();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}: {e}", log::paint("error", ansi));
            if json {
                // Machines reading stdout learn why there is no report.
                print_json(&serde_json::json!({
                    "error": e.to_string(),
                    "exit_code": e.exit_code(),
                }));
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Build(a) => build::run(g, a),
        Command::Status(a) => status::run(g, a),
        Command::Graph(a) => graph::run(g, a),
        Command::Clean(a) => clean::run(g, a),
        Command::Gc(a) => gc::run(g, a),
        Command::Cache(a) => cache::run(g, a),
        Command::Init(a) => init::run(g, a),
        Command::Schema(a) => schema::run(g, a),
        Command::Convert(a) => convert::run(g, a),
        Command::Inspect(a) => inspect::run(g, a),
        Command::Quantize(a) => quantize::run(g, a),
        Command::Eval(a) => eval::run(g, a),
        Command::Run(a) => run::run(g, a),
        Command::Imatrix(a) => imatrix::run(g, a),
        Command::Template(a) => template::run(g, a),
        Command::Lint(a) => lint::run(g, a),
        Command::Install(a) => install::run(g, a),
        Command::Uninstall(a) => uninstall::run(g, a),
        Command::Verify(a) => verify::run(g, a),
        Command::Completions(a) => completions::run(g, a),
        Command::Man(a) => completions::run_man(g, a),
    }
}

/// Opens the project named by `--manifest` (default `tinylm.toml`) with the `--cache` override.
fn open(g: &GlobalOpts) -> Result<Workspace> {
    let remote = RemoteOverride {
        url: g.remote_cache.clone(),
        upload: g.remote_upload,
    };
    Workspace::open_with(
        &find_manifest(g.manifest.as_deref()),
        g.cache.as_deref(),
        &remote,
    )
}

/// Resolves the project's Hub and Ollama sources before a build: downloads what the Hugging Face
/// cache lacks unless offline (`--offline`, `HF_HUB_OFFLINE`); a `dry_run` downloads nothing and
/// reports what a build would download.
fn resolve_sources(g: &GlobalOpts, ws: &mut Workspace, dry_run: bool) -> Result<()> {
    use crate::workspace::Network;
    let offline = g.offline || crate::hub::offline_from_env();
    let net = match (dry_run, offline) {
        (true, offline) => Network::Preview { offline },
        (false, true) => Network::Offline,
        (false, false) => Network::Allowed,
    };
    let progress = download::Display::new(!(g.quiet || g.json));
    ws.resolve_sources(net, &progress)
}

/// Prints `value` as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Rust ignores SIGPIPE, so writing to a closed pipe (`tinylm … | head`) is an error and
/// `println!` panics on it. Restore the default, as other Unix tools have it: the process ends
/// quietly when its reader is gone. Builds stay safe: a kill at any point is (see `exec`).
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(g: &GlobalOpts) {
    use tracing_subscriber::EnvFilter;
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| crate::exec::LogWriter)
        // Field names (`id=`) are styled by the field formatter, which follows this flag.
        .with_ansi(g.color.enabled())
        .event_format(log::HumanFormat {
            ansi: g.color.enabled(),
        })
        .try_init();
}
