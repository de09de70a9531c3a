//! Why an action is stale (cargo calls it `DirtyReason`): what `tinylm status --explain` prints
//! and `tinylm status --json` reports, one variant per kind of change.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One reason an action must run (or have its outputs restored).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DirtyReason {
    /// Its key is unknown until an upstream action it needs is rebuilt.
    UpstreamStale {
        /// The stale upstream action.
        action: String,
    },
    /// The action is not in `tinylm.lock` at all.
    NeverBuilt,
    /// The key is the locked one, but the cache lost the outputs.
    OutputsNotCached,
    /// Not in the local cache; the remote cache has it, so a build downloads it.
    RemoteHit {
        /// The remote cache (without credentials).
        remote: String,
    },
    /// Outputs are cached but missing or modified under the output directory.
    OutputsMissing {
        /// The output directory.
        out: PathBuf,
    },
    /// A field of the key preimage changed (`params.…`, `version`, …).
    Changed {
        /// Dotted path in the key preimage.
        field: String,
        /// The old value (`None`: the field was added).
        old: Option<serde_json::Value>,
        /// The new value (`None`: the field was removed).
        new: Option<serde_json::Value>,
    },
    /// An input's content changed.
    InputChanged {
        /// Input name.
        input: String,
        /// Old digest, when the previous action record is still cached.
        #[serde(skip_serializing_if = "Option::is_none")]
        old: Option<String>,
        /// New digest, when the previous action record is still cached.
        #[serde(skip_serializing_if = "Option::is_none")]
        new: Option<String>,
    },
    /// The action reads an input it did not read before.
    InputAdded {
        /// Input name.
        input: String,
    },
    /// The action no longer reads an input.
    InputRemoved {
        /// Input name.
        input: String,
    },
    /// The previous record was garbage-collected and no input changed: parameters or the
    /// implementation version must have.
    ParamsOrVersion,
    /// It reads a Hugging Face Hub source the local cache lacks; a build downloads it first.
    SourceNotDownloaded(crate::hub::NotDownloaded),
}

impl fmt::Display for DirtyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirtyReason::UpstreamStale { action } => write!(f, "needs `{action}`, which is stale"),
            DirtyReason::NeverBuilt => f.write_str("never built (not in tinylm.lock)"),
            DirtyReason::OutputsNotCached => {
                f.write_str("same key as tinylm.lock, but its outputs are no longer in the cache")
            }
            DirtyReason::RemoteHit { remote } => {
                write!(
                    f,
                    "not in the local cache; downloaded from the remote cache {remote}"
                )
            }
            DirtyReason::OutputsMissing { out } => write!(
                f,
                "cached; outputs missing or changed under {}",
                out.display()
            ),
            DirtyReason::Changed { field, old, new } => {
                let show = |v: &Option<serde_json::Value>, none: &str| {
                    v.as_ref().map_or_else(|| none.to_string(), short)
                };
                write!(
                    f,
                    "{field}: {} → {}",
                    show(old, "(added)"),
                    show(new, "(removed)")
                )
            }
            DirtyReason::InputChanged {
                input,
                old: Some(old),
                new: Some(new),
            } => write!(
                f,
                "input `{input}` changed: {} → {}",
                &old[..12.min(old.len())],
                &new[..12.min(new.len())]
            ),
            DirtyReason::InputChanged { input, .. } => write!(f, "input `{input}` changed"),
            DirtyReason::InputAdded { input } => write!(f, "input `{input}` added"),
            DirtyReason::InputRemoved { input } => write!(f, "input `{input}` removed"),
            DirtyReason::SourceNotDownloaded(nd) => write!(f, "{nd}"),
            DirtyReason::ParamsOrVersion => f.write_str(
                "parameters or implementation version changed (previous record not in cache)",
            ),
        }
    }
}

/// A JSON value in at most 60 characters.
fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}
