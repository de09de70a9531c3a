//! Fault injection for crash-safety tests, compiled into debug builds only.
//!
//! `TINYLM_FAULT=<point>` or `<point>:<action id>` aborts the process (no destructors, like a
//! crash or `kill -9`) when execution reaches that point; `panic-<point>[:<action id>]` panics
//! there instead, like a bug would; `enospc-<point>[:<action id>]` makes the I/O at an
//! [`io_point`] fail with "no space left on device", like a full disk.

/// Aborts (or panics) if `TINYLM_FAULT` names this point (optionally for this action id).
#[cfg(debug_assertions)]
pub fn point(name: &str, id: &str) {
    if let Ok(spec) = std::env::var("TINYLM_FAULT") {
        let (p, target) = spec
            .split_once(':')
            .map_or((spec.as_str(), None), |(p, t)| (p, Some(t)));
        if target.is_some_and(|t| t != id) {
            return;
        }
        if p == name {
            eprintln!("tinylm: fault injected at {name} ({id})");
            std::process::abort();
        }
        if p.strip_prefix("panic-") == Some(name) {
            panic!("injected panic at {name} ({id})");
        }
    }
}

/// Fails with ENOSPC if `TINYLM_FAULT` is `enospc-<name>` (optionally for this id).
#[cfg(debug_assertions)]
pub fn io_point(name: &str, id: &str) -> std::io::Result<()> {
    if let Ok(spec) = std::env::var("TINYLM_FAULT") {
        let (p, target) = spec
            .split_once(':')
            .map_or((spec.as_str(), None), |(p, t)| (p, Some(t)));
        if p.strip_prefix("enospc-") == Some(name) && target.is_none_or(|t| t == id) {
            #[cfg(unix)]
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            #[cfg(not(unix))]
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
    }
    Ok(())
}

/// Release builds carry no fault points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn io_point(_name: &str, _id: &str) -> std::io::Result<()> {
    Ok(())
}

/// Release builds carry no fault points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str, _id: &str) {}
