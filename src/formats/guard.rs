//! Calls into third-party parsers on user input, with their panics turned into errors.
//!
//! Our own readers never panic on bad input (each returns an error naming the file and the
//! field), but a dependency may: the `tokenizers` crate indexes its template post-processor's
//! special tokens without checking, so a `tokenizer.json` naming a token it does not define
//! aborts the process. [`catch`] runs such a call under `catch_unwind` and reports the panic
//! as an ordinary error, without the default hook's "thread panicked" noise on stderr.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Depth of [`catch`] calls on this thread: panics inside are expected and not printed.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
}

static HOOK: Once = Once::new();

/// Wraps the current panic hook once: panics on a thread inside [`catch`] print nothing
/// (they become errors); any other panic is reported by the previous hook as before.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, a call into third-party code on user input; a panic becomes `Err` with the
/// panic's message, prefixed by `what` (e.g. "the tokenizers library failed on tokenizer.json").
pub fn catch<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    GUARDED.with(|g| g.set(g.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    result.map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("{what} (internal error: {msg}); the file is malformed")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_errors_and_values_pass_through() {
        assert_eq!(catch("x", || 7), Ok(7));
        let err = catch("the parser failed on f.json", || -> u32 {
            let v: Vec<u32> = Vec::new();
            v[3]
        })
        .unwrap_err();
        assert!(err.starts_with("the parser failed on f.json"), "{err}");
        assert!(err.contains("index out of bounds"), "{err}");
        // Nested guards and the depth counter recover.
        let inner = catch("outer", || catch("inner", || panic!("boom"))).unwrap();
        assert!(inner.unwrap_err().contains("boom"));
        assert_eq!(GUARDED.with(Cell::get), 0);
    }
}
