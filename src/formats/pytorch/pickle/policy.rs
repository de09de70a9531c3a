//! What a pickle may reference: the security policy of the unpickler, in one reviewable place.
//!
//! Python's unpickler imports and calls whatever `module.name` a pickle names; that is how a
//! malicious checkpoint runs code (see the warning in Python's `pickle` documentation,
//! <https://docs.python.org/3/library/pickle.html>, and PyTorch's `torch.load(weights_only=True)`
//! allowlist). tinylm calls nothing. [`classify`] sorts every global a pickle references into:
//! - refused ([`PickleError::Forbidden`]): modules that reach the OS, the interpreter, other
//!   (un)picklers or code loading, interpreter dunders, and every `builtins` name outside a
//!   small allowlist of data constructors;
//! - interpreted ([`Known`]): the data-only constructors the VM evaluates itself
//!   (`OrderedDict`, `set`, `bytes` via `_codecs.encode`, torch's tensor rebuild functions and
//!   storage classes);
//! - kept as an opaque description (`Known::Opaque`): any other class, never called.

use super::PickleError;
use crate::formats::DType;

/// Callables the unpickler interprets itself; everything else is [`Known::Opaque`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Known {
    OrderedDict,
    Set,
    Bytes,
    ByteArray,
    CodecsEncode,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildFromTypeV2,
    Storage(Option<DType>),
    Opaque,
}

/// Module prefixes that can reach the OS, the interpreter or arbitrary code.
const FORBIDDEN_PREFIXES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "posixpath",
    "ntpath",
    "subprocess",
    "_posixsubprocess",
    "sys",
    "shutil",
    "socket",
    "importlib",
    "imp",
    "runpy",
    "pty",
    "ctypes",
    "_ctypes",
    "multiprocessing",
    "pickle",
    "_pickle",
    "cPickle",
    "dill",
    "marshal",
    "code",
    "codeop",
    "signal",
    "webbrowser",
    "platform",
    "asyncio",
    "threading",
    "_thread",
    "io",
    "_io",
    "operator",
    "_operator",
    "functools",
    "_functools",
    "types",
    "inspect",
    "pdb",
    "bdb",
    "timeit",
    "tempfile",
    "pathlib",
    "glob",
    "urllib",
    "http",
    "ftplib",
    "smtplib",
    "telnetlib",
    "commands",
    "popen2",
    "profile",
    "cProfile",
    "trace",
    "sysconfig",
    "zipimport",
    "pkgutil",
    "site",
    "ensurepip",
    "venv",
    "distutils",
    "setuptools",
    "pip",
    "shelve",
    "dbm",
    "sqlite3",
    "_winapi",
    "msvcrt",
    "winreg",
    "torch.hub",
    "torch.jit",
    "torch.ops",
    "torch.package",
    "torch.serialization",
    "torch.load",
    "torch.utils.cpp_extension",
    "numpy.load",
    "numpy.ctypeslib",
    "numpy.testing",
];

/// The only names accepted from `builtins` (all plain data constructors).
const ALLOWED_BUILTINS: &[&str] = &[
    "set",
    "frozenset",
    "bytes",
    "bytearray",
    "complex",
    "slice",
    "range",
    "object",
    "list",
    "dict",
    "tuple",
    "int",
    "float",
    "str",
    "bool",
];

/// Sorts the global `module.name` referenced at byte `offset`.
pub(super) fn classify(module: &str, name: &str, offset: usize) -> Result<Known, PickleError> {
    let full = format!("{module}.{name}");
    let forbidden = || PickleError::Forbidden {
        global: full.clone(),
        offset,
    };
    if FORBIDDEN_PREFIXES
        .iter()
        .any(|p| full == *p || (full.starts_with(p) && full.as_bytes().get(p.len()) == Some(&b'.')))
    {
        return Err(forbidden());
    }
    // Dunder attributes (`__import__`, `__builtins__`, `__reduce__`, …) are interpreter
    // machinery, never data.
    if name
        .split('.')
        .any(|part| part.starts_with("__") && part.ends_with("__") && part.len() > 4)
        || module.contains("__builtin")
    {
        // `__builtin__` is Python 2's name for `builtins`; route it through the allowlist.
        if matches!(module, "__builtin__" | "__builtins__") && ALLOWED_BUILTINS.contains(&name) {
            return Ok(builtin(name));
        }
        return Err(forbidden());
    }
    if module == "builtins" {
        return if ALLOWED_BUILTINS.contains(&name) {
            Ok(builtin(name))
        } else {
            Err(forbidden())
        };
    }
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Known::OrderedDict,
        ("_codecs", "encode") => Known::CodecsEncode,
        ("torch._utils", "_rebuild_tensor_v2") => Known::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Known::RebuildTensor,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Known::RebuildParameter
        }
        ("torch._tensor", "_rebuild_from_type_v2") => Known::RebuildFromTypeV2,
        ("torch" | "torch.storage", n) if n.ends_with("Storage") => {
            Known::Storage(storage_dtype(n))
        }
        _ => Known::Opaque,
    })
}

fn builtin(name: &str) -> Known {
    match name {
        "set" | "frozenset" => Known::Set,
        "bytes" => Known::Bytes,
        "bytearray" => Known::ByteArray,
        _ => Known::Opaque,
    }
}

/// Maps a torch storage class name to its element type.
fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "DoubleStorage" => DType::F64,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" | "UntypedStorage" => DType::U8,
        "BoolStorage" => DType::Bool,
        "ComplexFloatStorage" => DType::C64,
        _ => return None,
    })
}
