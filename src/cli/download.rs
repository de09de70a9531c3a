//! How Hub downloads show: a byte bar (file, bytes, rate, ETA) on a terminal, one line per file
//! otherwise, nothing with `--json` or `-q`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::hub::download::DownloadProgress;
use crate::hub::human_bytes;

/// The display of one command's downloads.
pub(super) struct Display {
    shown: bool,
    tty: bool,
    current: Mutex<Option<Current>>,
}

struct Current {
    file: String,
    bar: Option<ProgressBar>,
    started: Instant,
    /// Bytes this run received (not counting a resumed prefix).
    received: u64,
}

impl Display {
    /// Shows downloads when `shown` (not `--json`, not `-q`); a bar only when stderr is a
    /// terminal, as the build's own progress does.
    pub(super) fn new(shown: bool) -> Display {
        Display {
            shown,
            tty: std::io::stderr().is_terminal(),
            current: Mutex::new(None),
        }
    }
}

impl DownloadProgress for Display {
    fn start(&self, file: &str, size: Option<u64>, done: u64) {
        tracing::debug!("downloading {file} ({size:?} bytes, {done} already on disk)");
        if !self.shown {
            return;
        }
        let bar = if self.tty {
            let (pb, template) = match size {
                // The bar takes what the terminal's width leaves, so the line never wraps
                // on an 80-column terminal.
                Some(s) => (
                    ProgressBar::new(s),
                    "{msg} [{wide_bar}] {bytes}/{total_bytes}, {bytes_per_sec}, ETA {eta}",
                ),
                None => (
                    ProgressBar::no_length(),
                    "{msg} {spinner} {bytes}, {bytes_per_sec}",
                ),
            };
            pb.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            // The file's name alone (the repo is in the line left when it is done).
            let name = file.rsplit('/').next().unwrap_or(file);
            pb.set_message(format!("{:>12} {name}", "Downloading"));
            // A resumed download's rate and ETA count only what arrives now.
            pb.set_position(done);
            pb.reset_eta();
            // Log lines (-v) go above the bar, not through it.
            crate::exec::set_active_bar(Some(pb.clone()));
            Some(pb)
        } else {
            let what = match size {
                Some(s) if done > 0 => format!(
                    "{file} ({}, resuming at {})",
                    human_bytes(s),
                    human_bytes(done)
                ),
                Some(s) => format!("{file} ({})", human_bytes(s)),
                None => file.to_string(),
            };
            eprintln!("{:>12} {what}", "Downloading");
            None
        };
        if let Ok(mut c) = self.current.lock() {
            *c = Some(Current {
                file: file.to_string(),
                bar,
                started: Instant::now(),
                received: 0,
            });
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(mut c) = self.current.lock()
            && let Some(c) = c.as_mut()
        {
            c.received += n;
            if let Some(b) = &c.bar {
                b.inc(n);
            }
        }
    }

    fn finish(&self, ok: bool) {
        let Some(c) = self.current.lock().ok().and_then(|mut c| c.take()) else {
            return;
        };
        let secs = c.started.elapsed().as_secs_f64();
        tracing::info!(
            "{} {} ({} bytes in {secs:.2}s)",
            if ok {
                "downloaded"
            } else {
                "failed to download"
            },
            c.file,
            c.received
        );
        if let Some(b) = c.bar {
            crate::exec::set_active_bar(None);
            b.finish_and_clear();
            if ok {
                eprintln!(
                    "{:>12} {} ({} in {secs:.1}s)",
                    "Downloaded",
                    c.file,
                    human_bytes(b.position())
                );
            }
        }
    }
}
