//! Converts an HF folder to GGUF (driver for scripts/bench-convert.sh until `tinylm convert`
//! learns `--to gguf`).
//!
//! Usage: cargo run --release --example hf2gguf -- <hf-dir> <out.gguf> [outtype] [threads]

use std::process::ExitCode;

use tinylm::convert::hf::HfModel;
use tinylm::convert::hf_to_gguf::{self, GgufOptions, OutType};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: hf2gguf <hf-dir> <out.gguf> [f32|f16|bf16|q8_0|auto] [threads]");
        return ExitCode::from(2);
    }
    let outtype = match args.get(3).map(|s| OutType::parse(s)) {
        None => OutType::Auto,
        Some(Some(o)) => o,
        Some(None) => {
            eprintln!("unknown outtype {}", args[3]);
            return ExitCode::from(2);
        }
    };
    let threads = args.get(4).and_then(|s| s.parse().ok());
    let run = || -> tinylm::Result<()> {
        let t0 = std::time::Instant::now();
        let model = HfModel::open(&args[1])?;
        let t_open = t0.elapsed();
        if std::env::var_os("HF2GGUF_TIMINGS").is_some() {
            let t1 = std::time::Instant::now();
            let hp = hf_to_gguf::Hparams::parse(&model.files["config.json"])
                .map_err(tinylm::Error::from)?;
            let tok = hf_to_gguf::HfTokenizer::load(&model, &hp).map_err(tinylm::Error::from)?;
            eprintln!("tokenizer load {:?}", t1.elapsed());
            let t1 = std::time::Instant::now();
            let h = tok.chkhsh().map_err(tinylm::Error::from)?;
            eprintln!("chkhsh {:?} {h}", t1.elapsed());
            let t1 = std::time::Instant::now();
            let _ = tok.vocab_base(50257).map_err(tinylm::Error::from)?;
            eprintln!("vocab_base {:?}", t1.elapsed());
            let p = hf_to_gguf::plan(&model, &GgufOptions::default())?;
            eprintln!(
                "open {:?}, plan {:?} ({} tensors)",
                t_open,
                t0.elapsed() - t_open,
                p.tensors.len()
            );
        }
        let opts = GgufOptions {
            outtype,
            threads,
            ..Default::default()
        };
        let r = hf_to_gguf::convert_to_path(&model, &opts, std::path::Path::new(&args[2]))?;
        eprintln!(
            "{} ({}) → {}: {} tensors, {} params, outtype {}, pre {} ({:?}), {} bytes",
            args[1],
            r.hf_arch,
            args[2],
            r.tensor_count,
            r.params,
            r.outtype.name(),
            r.pre,
            r.pre_source,
            r.file_size
        );
        for w in &r.warnings {
            eprintln!("warning: {w}");
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
