//! A restricted unpickler (protocols 2–5) that never executes code.
//!
//! Python's unpickler calls whatever `module.name` a pickle names. This one interprets a handful
//! of data-only constructors itself (`collections.OrderedDict`, `set`, `bytes` via
//! `_codecs.encode`, torch's tensor rebuild functions) and keeps every other class as an
//! [`Object`] description that is never called. References to modules that can reach the
//! operating system or the interpreter (`os`, `subprocess`, `builtins.eval`, …) are refused
//! outright so a malicious file is reported, not silently half-loaded.
//!
//! Objects live in an arena while the pickle runs (containers are mutated after being memoized,
//! as in Python), and are turned into a [`Value`] tree at `STOP` under a size budget, so shared
//! references cannot blow up memory and cycles become [`Value::Recursive`].
//!
//! The pieces: [`opcodes`] names every opcode, [`policy`] decides what a pickle may reference,
//! [`vm`] runs the opcodes over an arena and converts the result into a [`Value`].

// The whole table, also the opcodes the VM only handles as part of a range (TUPLE2, EXT2).
#[allow(dead_code)]
mod opcodes;
mod policy;
mod vm;

use super::value::Value;

/// Why a pickle was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PickleError {
    /// The data ended in the middle of an opcode, or before `STOP`.
    #[error("pickle is truncated: it ends at byte {offset} while reading {what}")]
    Truncated {
        /// Where the data ended.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// A byte that is not a pickle opcode.
    #[error("not a pickle, or corrupt: unknown opcode 0x{op:02x} at byte {offset}")]
    UnknownOpcode {
        /// The byte.
        op: u8,
        /// Where it was.
        offset: usize,
    },
    /// An opcode this reader deliberately does not support.
    #[error("unsupported pickle opcode {name} at byte {offset}: {why}")]
    Unsupported {
        /// Opcode name.
        name: &'static str,
        /// Where it was.
        offset: usize,
        /// Why it is not supported.
        why: &'static str,
    },
    /// The pickle names a global that could run code.
    #[error(
        "refusing to load: the pickle references `{global}` (at byte {offset}), which can run \
         code. tinylm only accepts data (tensors, dicts, lists, numbers, strings); do not open \
         this file with torch.load or pickle either unless you trust its origin"
    )]
    Forbidden {
        /// `module.name`.
        global: String,
        /// Where it was referenced.
        offset: usize,
    },
    /// The opcodes are individually valid but do not make sense together.
    #[error("malformed pickle at byte {offset}: {msg}")]
    Malformed {
        /// Where the problem was found.
        offset: usize,
        /// What was wrong.
        msg: String,
    },
    /// The pickle is larger or deeper than any checkpoint needs.
    #[error("pickle is too complex to load: {0}")]
    TooComplex(String),
}

/// What the unpickler may resolve beyond plain data.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Resolve torch persistent ids `('storage', Type, key, location, numel)` into storages.
    pub torch_storages: bool,
}

/// Runs the pickle in `data` and returns the value it builds.
pub fn unpickle(data: &[u8], opts: Options) -> Result<Value, PickleError> {
    let mut vm = vm::Vm::new(data, opts);
    let root = vm.run()?;
    vm.into_value(root)
}
