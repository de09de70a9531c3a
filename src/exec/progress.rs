//! Progress display: an indicatif bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress of a build.
pub struct Progress {
    bar: Option<ProgressBar>,
    running: Vec<String>,
}

impl Progress {
    /// A bar of `len` actions when `enabled` and stderr is a terminal.
    pub fn new(enabled: bool, len: u64) -> Progress {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            running: Vec::new(),
        }
    }

    /// An action started.
    pub fn start(&mut self, id: &str, lines: bool) {
        self.running.push(id.to_string());
        self.line(lines.then(|| format!("{:>12} {id}", "Running")));
        self.refresh();
    }

    /// An action finished.
    pub fn finished(&mut self, id: &str, secs: f64, lines: bool) {
        self.running.retain(|r| r != id);
        self.line(lines.then(|| format!("{:>12} {id} ({secs:.2}s)", "Built")));
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        self.refresh();
    }

    /// An action was satisfied from the cache.
    pub fn done(&mut self, _id: &str) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    /// An action failed.
    pub fn failed(&mut self, msg: &str) {
        self.line(Some(format!("{:>12} {msg}", "Failed")));
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn line(&self, line: Option<String>) {
        if let Some(l) = line {
            match &self.bar {
                Some(b) => b.println(l),
                None => eprintln!("{l}"),
            }
        }
    }

    fn refresh(&self) {
        if let Some(b) = &self.bar {
            b.set_message(self.running.join(", "));
        }
    }
}
