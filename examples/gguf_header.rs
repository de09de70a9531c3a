//! Times GGUF header parsing alone (`GgufFile::open`: mmap, metadata, tensor infos, duplicate
//! and bounds checks), for scripts/bench-gguf-header.sh.
//!
//! usage: cargo run --release --example gguf_header -- FILE... (best of 5 runs per file)

use std::time::Instant;

fn main() {
    for path in std::env::args().skip(1) {
        let mut best = f64::MAX;
        let mut counts = (0, 0);
        for _ in 0..5 {
            let t = Instant::now();
            let g = tinylm::formats::gguf::GgufFile::open(&path).unwrap_or_else(|e| {
                eprintln!("{e}");
                std::process::exit(1)
            });
            best = best.min(t.elapsed().as_secs_f64());
            counts = (g.tensors.len(), g.metadata.len());
        }
        println!(
            "{path}: {} tensors, {} metadata keys: header parsed in {:.1} ms (best of 5)",
            counts.0,
            counts.1,
            best * 1e3
        );
    }
}
