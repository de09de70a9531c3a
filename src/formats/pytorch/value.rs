//! The data model produced by the restricted unpickler: plain values, tensor references, and
//! opaque objects that are described but never constructed.

use std::fmt::Write as _;

use crate::formats::DType;

/// A storage referenced by a torch persistent id `('storage', <Type>, key, location, numel)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// Key of the storage: its data lives in `<archive>/data/<key>`.
    pub key: String,
    /// Element type of the storage.
    pub dtype: DType,
    /// Device the storage was saved from (`cpu`, `cuda:0`, …); informational only.
    pub location: String,
    /// Number of elements of the storage.
    pub numel: u64,
}

/// A tensor view of a storage (what `torch._utils._rebuild_tensor_v2` would build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage the tensor views; tied tensors share one.
    pub storage: StorageRef,
    /// Offset of the first element, in elements.
    pub offset: u64,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Stride of each dimension, in elements.
    pub stride: Vec<usize>,
    /// Whether the tensor was a trainable parameter.
    pub requires_grad: bool,
}

impl TensorRef {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the view is row-major contiguous (so its bytes are one slice of the storage).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1usize;
        for (&size, &stride) in self.shape.iter().zip(&self.stride).rev() {
            // Dimensions of size 1 can have any stride without changing the layout.
            if size != 1 && stride != expected {
                return false;
            }
            expected = expected.saturating_mul(size);
        }
        true
    }
}

/// An instance of a class the unpickler does not know: kept as data, never constructed.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// `module.name` of the class or function that would have been called.
    pub class: String,
    /// Arguments it would have been called with.
    pub args: Vec<Value>,
    /// State passed to `__setstate__` (BUILD), if any.
    pub state: Option<Value>,
    /// Items appended to it (list subclasses).
    pub items: Vec<Value>,
    /// Entries set on it (dict subclasses such as `collections.defaultdict`).
    pub entries: Vec<(Value, Value)>,
}

/// A value rebuilt from a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An int that fits in 64 bits.
    Int(i64),
    /// A larger int, as little-endian two's complement bytes.
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A `str`.
    Str(String),
    /// `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict or `collections.OrderedDict`, in insertion order, keys unique.
    Dict(Vec<(Value, Value)>),
    /// A set or frozenset.
    Set(Vec<Value>),
    /// A tensor.
    Tensor(TensorRef),
    /// A bare storage (not wrapped in a tensor).
    Storage(StorageRef),
    /// A reference to a class or function (`module.name`), never called.
    Global(String),
    /// An object of an unknown class, kept as data.
    Object(Box<Object>),
    /// A reference back to a container that encloses it (a cycle in the pickle).
    Recursive,
}

impl Value {
    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an int (or a bool, as in Python).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The entries, if this is a dict.
    pub fn as_dict(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value stored under the string key `key`, if this is a dict that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// A short type name for messages (`dict`, `tensor`, `object tiktoken.core.Encoding`, …).
    pub fn type_name(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) | Value::BigInt(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::List(_) => "list".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::Dict(_) => "dict".into(),
            Value::Set(_) => "set".into(),
            Value::Tensor(_) => "tensor".into(),
            Value::Storage(_) => "storage".into(),
            Value::Global(g) => format!("reference to {g}"),
            Value::Object(o) => format!("object {}", o.class),
            Value::Recursive => "recursive reference".into(),
        }
    }

    /// A one-line summary for `inspect`: scalars in full (strings shortened), containers by size.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        match self {
            Value::None => s.push_str("None"),
            Value::Bool(b) => s.push_str(if *b { "True" } else { "False" }),
            Value::Int(i) => {
                let _ = write!(s, "{i}");
            }
            Value::BigInt(b) => {
                let _ = write!(s, "int ({} bytes)", b.len());
            }
            Value::Float(f) => {
                let _ = write!(s, "{f}");
            }
            Value::Str(v) => {
                let short: String = v.chars().take(60).collect();
                let ellipsis = if short.len() < v.len() { "…" } else { "" };
                let _ = write!(s, "{short:?}{ellipsis}");
            }
            Value::Bytes(b) => {
                let _ = write!(s, "bytes ({} bytes)", b.len());
            }
            Value::List(v) => {
                let _ = write!(s, "list ({} items)", v.len());
            }
            Value::Tuple(v) => {
                let _ = write!(s, "tuple ({} items)", v.len());
            }
            Value::Dict(v) => {
                let _ = write!(s, "dict ({} entries)", v.len());
            }
            Value::Set(v) => {
                let _ = write!(s, "set ({} items)", v.len());
            }
            Value::Tensor(t) => {
                let _ = write!(s, "tensor {} {:?}", t.storage.dtype, t.shape);
            }
            other => s.push_str(&other.type_name()),
        }
        s
    }
}
