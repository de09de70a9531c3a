//! `tinylm template`: list, show and detect chat templates.

use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalOpts;
use crate::template::detect::detect_path;
use crate::template::families::{FAMILIES, builtin, builtin_names};
use crate::template::gotmpl::exec::{ChatMessage, ThinkOptions, render_chat};
use crate::template::gotmpl::parse;
use crate::{Error, Result};

/// Arguments of `tinylm template`.
#[derive(Debug, clap::Args)]
pub struct TemplateArgs {
    #[command(subcommand)]
    pub command: TemplateCommand,
}

/// `tinylm template` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TemplateCommand {
    /// List the built-in templates.
    List,
    /// Print a built-in template: Go TEMPLATE, stop strings and a sample rendering.
    Show {
        /// Template name (`chatml`, `llama3-tools`, `chatml-thinking`, …).
        name: String,
    },
    /// Pick the family of a model: a .jinja file, a .gguf, or an HF folder.
    Detect {
        /// The file or folder.
        path: PathBuf,
    },
}

/// Runs `tinylm template`.
pub fn run(g: &GlobalOpts, args: TemplateArgs) -> Result<ExitCode> {
    match args.command {
        TemplateCommand::List => {
            if g.json {
                let list: Vec<_> = builtin_names()
                    .iter()
                    .filter_map(|n| builtin(n))
                    .map(|t| serde_json::json!({"name": t.name, "family": t.family.name(), "stops": t.stops}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
                return Ok(ExitCode::SUCCESS);
            }
            for f in FAMILIES {
                let variants: Vec<String> = f
                    .variants()
                    .iter()
                    .map(|v| format!("{}{}", f.name(), v.suffix()))
                    .collect();
                println!("{:<12} {}", f.name(), f.description());
                if variants.len() > 1 {
                    println!("{:<12} variants: {}", "", variants[1..].join(", "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplateCommand::Show { name } => {
            let t = builtin(&name).ok_or_else(|| {
                Error::Usage(format!(
                    "no built-in template {name:?}; available: {}",
                    builtin_names().join(", ")
                ))
            })?;
            let parsed = parse(&t.template).map_err(|e| Error::Build(e.to_string()))?;
            let sample = render_chat(
                &parsed,
                &[
                    ChatMessage::new("system", "You are a helpful assistant."),
                    ChatMessage::new("user", "Hello!"),
                ],
                ThinkOptions::default(),
            )
            .map_err(|e| Error::Build(e.to_string()))?;
            if g.json {
                let v = serde_json::json!({"name": t.name, "template": t.template, "stops": t.stops, "sample": sample});
                println!("{v}");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "# {} ({}, {})",
                t.name,
                t.family.description(),
                parsed.mode()
            );
            println!("TEMPLATE:\n{}\n", t.template);
            println!("stop: {}", t.stops.join("  "));
            println!("\nsample (system + user, as Ollama renders it):\n{sample}");
            Ok(ExitCode::SUCCESS)
        }
        TemplateCommand::Detect { path } => match detect_path(&path)? {
            Ok(d) => {
                if g.json {
                    let v = serde_json::json!({"template": d.name(), "family": d.family.name(), "evidence": d.evidence});
                    println!("{v}");
                } else {
                    print!("{d}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(Error::Build(format!("{}: {e}", path.display()))),
        },
    }
}
