//! `tinylm run`: generate a continuation (or a chat reply) with a GGUF, the smoke test right
//! after a build.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use super::GlobalOpts;
use crate::formats::gguf::GgufFile;
use crate::infer::sample::{Sampler, Sampling, top2_gap};
use crate::infer::{self, Numerics};
use crate::template::gotmpl::{self, exec};
use crate::template::modelfile::Modelfile;
use crate::template::{detect, families, params::ParamValue, vocab::Vocab};
use crate::{Error, IoContext, Result};

/// Arguments of `tinylm run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The GGUF to run.
    pub model: PathBuf,
    /// Prompt text.
    #[arg(short = 'p', long = "prompt", value_name = "TEXT")]
    pub prompt: String,
    /// Tokens to generate at most.
    #[arg(
        short = 'n',
        long = "n-predict",
        default_value_t = 64,
        value_name = "N"
    )]
    pub n_predict: usize,
    /// Sample with this temperature instead of greedy decoding.
    #[arg(long, value_name = "T")]
    pub temp: Option<f32>,
    /// Seed for --temp.
    #[arg(long, default_value_t = 0, value_name = "S", requires = "temp")]
    pub seed: u64,
    /// Render the chat template around the prompt (a user message) and stop at its stop
    /// strings.
    #[arg(long)]
    pub chat: bool,
    /// Built-in chat template to use with --chat (default: detected from the GGUF).
    #[arg(long, value_name = "NAME", requires = "chat")]
    pub template: Option<String>,
    /// Take TEMPLATE, SYSTEM and stop PARAMETERs from this Modelfile (with --chat).
    #[arg(
        long,
        value_name = "PATH",
        requires = "chat",
        conflicts_with = "template"
    )]
    pub modelfile: Option<PathBuf>,
    /// System prompt (with --chat).
    #[arg(long, value_name = "TEXT", requires = "chat")]
    pub system: Option<String>,
    /// Worker threads (default: every core).
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Exact f32 arithmetic instead of llama.cpp's CPU numerics.
    #[arg(long)]
    pub exact: bool,
}

struct Chat {
    prompt: String,
    stops: Vec<String>,
}

fn chat_prompt(args: &RunArgs, file: &GgufFile) -> Result<Chat> {
    let (template, mut stops, mut system) = if let Some(p) = &args.modelfile {
        let mf = Modelfile::parse(&std::fs::read(p).with_path(p)?)
            .map_err(|e| Error::format(p, e.to_string()))?;
        let t = mf.template.clone().ok_or_else(|| {
            Error::format(
                p,
                "has no TEMPLATE; --chat needs one (or use --template NAME)",
            )
        })?;
        let stops = mf
            .parameters
            .iter()
            .filter(|(k, _)| k == "stop")
            .flat_map(|(_, v)| match v {
                ParamValue::List(l) => l.clone(),
                _ => Vec::new(),
            })
            .collect();
        (t, stops, mf.system.clone())
    } else {
        let b = match &args.template {
            Some(n) => families::builtin(n).ok_or_else(|| {
                Error::Usage(format!(
                    "unknown template '{n}'; built-in: {}",
                    families::builtin_names().join(", ")
                ))
            })?,
            None => detect::detect(&Vocab::from_gguf(file))
                .map_err(|e| {
                    Error::Build(format!(
                        "{}: {e} (or pass --template)",
                        args.model.display()
                    ))
                })?
                .template()
                .ok_or_else(|| Error::Build("detected template has no built-in text".into()))?,
        };
        (b.template, b.stops, None)
    };
    if args.system.is_some() {
        system = args.system.clone();
    }
    stops.retain(|s| !s.is_empty());
    let t = gotmpl::parse(&template).map_err(|e| Error::Build(format!("chat template: {e}")))?;
    let mut msgs = Vec::new();
    if let Some(s) = &system {
        msgs.push(exec::ChatMessage::new("system", s));
    }
    msgs.push(exec::ChatMessage::new("user", &args.prompt));
    let prompt = exec::render_chat(&t, &msgs, exec::ThinkOptions::default())
        .map_err(|e| Error::Build(format!("chat template: {e}")))?;
    Ok(Chat { prompt, stops })
}

/// Runs `tinylm run`.
pub fn run(g: &GlobalOpts, args: RunArgs) -> Result<ExitCode> {
    super::eval::init_threads(args.threads)?;
    if let Some(t) = args.temp
        && !(t >= 0.0 && t.is_finite())
    {
        return Err(Error::Usage(format!("--temp {t}: must be 0 or more")));
    }
    let file = GgufFile::open(&args.model)?;
    let m = infer::load_with_tokenizer(&args.model)?;
    let chat = if args.chat {
        Some(chat_prompt(&args, &file)?)
    } else {
        None
    };
    let prompt = chat
        .as_ref()
        .map_or(args.prompt.as_str(), |c| c.prompt.as_str());
    let tokens = m.tokenizer.encode(prompt, true, true);
    if tokens.is_empty() {
        return Err(Error::Usage("the prompt is empty".into()));
    }
    let numerics = if args.exact {
        Numerics::default()
    } else {
        Numerics::llama_cpp()
    };
    let mut session = m
        .model
        .session_with(tokens.len() + args.n_predict, numerics);
    let sampling = match args.temp {
        Some(t) if t > 0.0 => Sampling::Temperature {
            temp: t,
            seed: args.seed,
        },
        _ => Sampling::Greedy,
    };
    let mut sampler = Sampler::new(sampling);
    let t0 = Instant::now();
    let mut logits = session.eval(&tokens, tokens.len() - 1)?;
    let t_prompt = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut out_ids = Vec::new();
    let mut gaps = Vec::new();
    let mut text = Vec::new();
    let mut printed = 0;
    let stdout = std::io::stdout();
    let mut stop_reason = "length";
    for _ in 0..args.n_predict {
        let id = sampler.sample(&logits);
        gaps.push(top2_gap(&logits));
        if m.tokenizer.is_eog(id) {
            stop_reason = "eog";
            break;
        }
        out_ids.push(id);
        text.extend(m.tokenizer.token_bytes(id, false));
        if let Some(c) = &chat
            && let Some(pos) = c
                .stops
                .iter()
                .filter_map(|s| find(&text, s.as_bytes()))
                .min()
        {
            text.truncate(pos);
            stop_reason = "stop";
            break;
        }
        if !g.json && !g.quiet {
            // Print whole UTF-8 characters as they complete.
            let valid = match std::str::from_utf8(&text[printed..]) {
                Ok(_) => text.len(),
                Err(e) => printed + e.valid_up_to(),
            };
            let keep = chat
                .as_ref()
                .map_or(0, |c| c.stops.iter().map(|s| s.len()).max().unwrap_or(0));
            let upto = valid.saturating_sub(keep).max(printed);
            let mut o = stdout.lock();
            let _ = o.write_all(&text[printed..upto]);
            let _ = o.flush();
            printed = upto;
        }
        if out_ids.len() == args.n_predict {
            break;
        }
        logits = session.eval(&[id], 0)?;
    }
    let t_gen = t1.elapsed().as_secs_f64();
    let n_gen = gaps.len();
    if g.json {
        let v = serde_json::json!({
            "model": args.model,
            "prompt": prompt,
            "prompt_tokens": tokens,
            "tokens": out_ids,
            "text": String::from_utf8_lossy(&text),
            "top2_gaps": gaps,
            "stop": stop_reason,
            "prompt_tokens_per_second": tokens.len() as f64 / t_prompt,
            "tokens_per_second": n_gen as f64 / t_gen.max(1e-9),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    if !g.quiet {
        let mut o = stdout.lock();
        let _ = o.write_all(&text[printed..]);
        let _ = writeln!(o);
    }
    if g.verbose > 0 {
        eprintln!(
            "prompt: {} tokens, {:.1} tokens/s; generated: {} tokens, {:.1} tokens/s ({})",
            tokens.len(),
            tokens.len() as f64 / t_prompt,
            n_gen,
            n_gen as f64 / t_gen.max(1e-9),
            stop_reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
