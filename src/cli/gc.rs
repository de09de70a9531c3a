//! `tinylm gc`.

use std::process::ExitCode;

use super::{GlobalOpts, open};
use crate::Result;

/// Arguments of `tinylm gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Only delete unreachable objects (oldest first) until the cache is at most this size
    /// (`500M`, `20G`, bytes).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
}

/// Parses `123`, `10K`, `500M`, `2G`, `1.5T` (powers of 1024; a trailing `B`/`iB` is allowed).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().trim_end_matches(['B', 'b']).trim_end_matches('i');
    let (num, mult) = match t.chars().last() {
        Some(c @ ('K' | 'k' | 'M' | 'm' | 'G' | 'g' | 'T' | 't')) => {
            let exp = "KMGT".find(c.to_ascii_uppercase()).unwrap_or(0) as i32 + 1;
            (&t[..t.len() - 1], 1024f64.powi(exp))
        }
        _ => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size `{s}` (try 500M, 20G)"))?;
    if v < 0.0 {
        return Err(format!("invalid size `{s}`"));
    }
    Ok((v * mult) as u64)
}

/// Runs `tinylm gc`.
pub fn run(g: &GlobalOpts, args: GcArgs) -> Result<ExitCode> {
    let stats = open(g)?.gc(args.max_size)?;
    let left = stats.bytes_before - stats.bytes_freed;
    if let Some(max) = args.max_size
        && left > max
        && !g.quiet
    {
        eprintln!(
            "warning: the cache is still {:.1} MiB, above --max-size ({:.1} MiB): the rest is \
             needed by tinylm.lock; `tinylm clean --all` empties it",
            left as f64 / 1048576.0,
            max as f64 / 1048576.0
        );
    }
    if g.json {
        println!("{}", serde_json::to_string(&stats).unwrap_or_default());
    } else if !g.quiet {
        eprintln!(
            "deleted {} objects ({:.1} MiB) and {} action records; cache now {:.1} MiB",
            stats.objects_deleted,
            stats.bytes_freed as f64 / 1048576.0,
            stats.records_deleted,
            (stats.bytes_before - stats.bytes_freed) as f64 / 1048576.0
        );
        if !stats.other_projects.is_empty() {
            eprintln!(
                "kept what {} other project(s) sharing this cache need",
                stats.other_projects.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
