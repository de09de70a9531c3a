//! Progress display: an indicatif bar on a terminal, plain lines otherwise.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::actions::WorkProgress;

/// Progress of a build.
pub struct Progress {
    bar: Option<ProgressBar>,
    running: Vec<String>,
}

impl Progress {
    /// A bar of `len` actions when `enabled` and stderr is a terminal.
    pub fn new(enabled: bool, len: u64) -> Progress {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::new();
            let bar = multi.add(ProgressBar::new(len));
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            set_active(Some(bar.clone()));
            if let Ok(mut m) = MULTI.lock() {
                *m = Some(multi);
            }
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

    /// An action was restored from the remote cache instead of running.
    pub fn downloaded(&mut self, id: &str, secs: f64, lines: bool) {
        self.running.retain(|r| r != id);
        self.line(lines.then(|| format!("{:>12} {id} ({secs:.2}s)", "Downloaded")));
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
            set_active(None);
            if let Ok(mut m) = MULTI.lock() {
                *m = None;
            }
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

/// The bar on screen, if any: log lines are printed above it instead of through it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// The build's bars: the action count, and below it one bar per running long action.
static MULTI: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// The progress bar of one running action (tokens evaluated, …), shown under the build's bar
/// while the action reports progress; nothing when the build shows no bar.
#[derive(Debug)]
pub struct ActionBar {
    id: String,
    bar: Mutex<Option<ProgressBar>>,
}

impl ActionBar {
    /// A bar for action `id`, created on its first update.
    pub fn new(id: &str) -> ActionBar {
        ActionBar {
            id: id.to_string(),
            bar: Mutex::new(None),
        }
    }
}

impl WorkProgress for ActionBar {
    fn update(&self, done: u64, total: u64, unit: &str) {
        let Ok(mut slot) = self.bar.lock() else {
            return;
        };
        if slot.is_none() {
            let Some(multi) = MULTI.lock().ok().and_then(|m| m.clone()) else {
                return;
            };
            let pb = multi.add(ProgressBar::new(total));
            pb.set_style(
                ProgressStyle::with_template(
                    "  {prefix} [{bar:30}] {pos}/{len} {msg}, {per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb.set_prefix(self.id.clone());
            pb.set_message(unit.to_string());
            *slot = Some(pb);
        }
        if let Some(pb) = slot.as_ref() {
            pb.set_length(total);
            pb.set_position(done);
        }
    }
}

impl Drop for ActionBar {
    fn drop(&mut self) {
        if let Some(pb) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            pb.finish_and_clear();
            if let Some(multi) = MULTI.lock().ok().and_then(|m| m.clone()) {
                multi.remove(&pb);
            }
        }
    }
}

/// Makes `bar` (a bar drawn outside a build, such as a download's) the one log lines are
/// printed above; `None` when it is gone.
pub fn set_active_bar(bar: Option<ProgressBar>) {
    set_active(bar);
}

fn set_active(bar: Option<ProgressBar>) {
    if let Ok(mut active) = ACTIVE.lock() {
        *active = bar;
    }
}

/// Log writer for `tracing`: stderr, with the progress bar (if any) hidden while a line is
/// written so logs and the bar never interleave on a terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE.lock().ok().and_then(|a| a.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
