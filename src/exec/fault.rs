//! Fault injection for crash-safety tests, compiled into debug builds only.
//!
//! `TINYLM_FAULT=<point>` or `<point>:<action id>` aborts the process (no destructors, like a
//! crash or `kill -9`) when execution reaches that point.

/// Aborts if `TINYLM_FAULT` names this point (optionally for this action id).
#[cfg(debug_assertions)]
pub fn point(name: &str, id: &str) {
    if let Ok(spec) = std::env::var("TINYLM_FAULT") {
        let (p, target) = spec
            .split_once(':')
            .map_or((spec.as_str(), None), |(p, t)| (p, Some(t)));
        if p == name && target.is_none_or(|t| t == id) {
            eprintln!("tinylm: fault injected at {name} ({id})");
            std::process::abort();
        }
    }
}

/// Release builds carry no fault points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str, _id: &str) {}
