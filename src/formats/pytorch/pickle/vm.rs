//! The pickle machine: opcodes run over an arena of objects under construction (containers are
//! mutated after being memoized, as in Python), then converted into a [`Value`] tree at `STOP`
//! under a size budget.

use std::collections::HashMap;

use super::opcodes as op;
use super::policy::{Known, classify};
use super::{Options, PickleError};
use crate::formats::pytorch::value::{Object, StorageRef, TensorRef, Value};

type Id = usize;

/// An object under construction.
#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Global(String, Known),
    Storage(StorageRef),
    Tensor(TensorRef),
    Object {
        class: String,
        args: Vec<Id>,
        state: Option<Id>,
        items: Vec<Id>,
        entries: Vec<(Id, Id)>,
    },
}

const MAX_DEPTH: usize = 200;
const MAX_VALUES: usize = 8_000_000;

/// Bytes that calls (`bytes(x)`, `set(x)`, `_codecs.encode`, …) may allocate, and that shared
/// references may expand to when the tree is built, beyond a small multiple of the pickle's
/// own size. A real checkpoint or tokenizer copies each value once; a pickle that references
/// one large string a million times is a memory bomb and is refused.
fn byte_budget(pickle_len: usize) -> usize {
    (64usize << 20).saturating_add(pickle_len.saturating_mul(4))
}

/// Heap bytes a node owns (what building or copying it allocates).
fn heap_size(n: &Node) -> usize {
    let id = std::mem::size_of::<Id>();
    match n {
        Node::Str(s) => s.len(),
        Node::Bytes(b) | Node::BigInt(b) => b.len(),
        Node::List(v) | Node::Tuple(v) | Node::Set(v) => v.len() * id,
        Node::Dict(p) => p.len() * 2 * id,
        Node::Global(g, _) => g.len(),
        Node::Object {
            class,
            args,
            items,
            entries,
            ..
        } => class.len() + (args.len() + items.len() + 2 * entries.len()) * id,
        _ => 0,
    }
}

/// The machine's state while a pickle runs.
pub(super) struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    opts: Options,
    /// What calls may still allocate ([`byte_budget`]).
    alloc_budget: usize,
}

impl<'a> Vm<'a> {
    /// A machine about to run `data`.
    pub(super) fn new(data: &'a [u8], opts: Options) -> Vm<'a> {
        Vm {
            data,
            pos: 0,
            nodes: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            opts,
            alloc_budget: byte_budget(data.len()),
        }
    }

    /// Runs the opcodes up to `STOP`; returns the result's arena id.
    pub(super) fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            let at = self.pos;
            let code = self.take(1, "an opcode")?[0];
            match code {
                // PROTO
                op::PROTO => {
                    let v = self.take(1, "PROTO")?[0];
                    if v > 5 {
                        return Err(self.malformed(at, format!("unknown pickle protocol {v}")));
                    }
                }
                // FRAME: framing is only a hint for buffered readers.
                op::FRAME => {
                    self.take(8, "FRAME")?;
                }
                op::STOP => {
                    let top = self.pop(at)?;
                    return Ok(top);
                }
                op::MARK => self.marks.push(self.stack.len()),
                op::POP => {
                    self.pop(at)?;
                }
                op::POP_MARK => {
                    self.pop_mark(at)?;
                }
                op::DUP => {
                    let top = self.top(at)?;
                    self.stack.push(top);
                }
                // Scalars.
                op::NONE => self.push(Node::None),
                op::NEWTRUE => self.push(Node::Bool(true)),
                op::NEWFALSE => self.push(Node::Bool(false)),
                op::BININT1 => {
                    let v = self.take(1, "BININT1")?[0];
                    self.push(Node::Int(i64::from(v)));
                }
                op::BININT2 => {
                    let v = u16::from_le_bytes(self.array("BININT2")?);
                    self.push(Node::Int(i64::from(v)));
                }
                op::BININT => {
                    let v = i32::from_le_bytes(self.array("BININT")?);
                    self.push(Node::Int(i64::from(v)));
                }
                op::LONG1 => {
                    let n = usize::from(self.take(1, "LONG1")?[0]);
                    let bytes = self.take(n, "LONG1")?;
                    let node = long_node(bytes);
                    self.push(node);
                }
                op::LONG4 => {
                    let n = i32::from_le_bytes(self.array("LONG4")?);
                    let n = usize::try_from(n)
                        .map_err(|_| self.malformed(at, "negative LONG4 length".into()))?;
                    let bytes = self.take(n, "LONG4")?;
                    let node = long_node(bytes);
                    self.push(node);
                }
                op::BINFLOAT => {
                    let v = f64::from_be_bytes(self.array("BINFLOAT")?);
                    self.push(Node::Float(v));
                }
                op::INT => {
                    let line = self.line("INT")?;
                    let node = match line {
                        "00" => Node::Bool(false),
                        "01" => Node::Bool(true),
                        s => Node::Int(
                            s.parse()
                                .map_err(|_| self.malformed(at, format!("bad INT {s:?}")))?,
                        ),
                    };
                    self.push(node);
                }
                op::LONG => {
                    let line = self.line("LONG")?;
                    let v = line
                        .trim_end_matches('L')
                        .parse()
                        .map_err(|_| self.malformed(at, format!("unsupported LONG {line:?}")))?;
                    self.push(Node::Int(v));
                }
                op::FLOAT => {
                    let line = self.line("FLOAT")?;
                    let v = line
                        .parse()
                        .map_err(|_| self.malformed(at, format!("bad FLOAT {line:?}")))?;
                    self.push(Node::Float(v));
                }
                // Strings and bytes.
                op::BINUNICODE => {
                    let n = u32::from_le_bytes(self.array("BINUNICODE")?) as usize;
                    let s = self.string(n, at)?;
                    self.push(Node::Str(s));
                }
                op::SHORT_BINUNICODE => {
                    let n = usize::from(self.take(1, "SHORT_BINUNICODE")?[0]);
                    let s = self.string(n, at)?;
                    self.push(Node::Str(s));
                }
                op::BINUNICODE8 => {
                    let n = self.len8("BINUNICODE8", at)?;
                    let s = self.string(n, at)?;
                    self.push(Node::Str(s));
                }
                op::BINBYTES => {
                    let n = u32::from_le_bytes(self.array("BINBYTES")?) as usize;
                    let b = self.take(n, "BINBYTES")?.to_vec();
                    self.push(Node::Bytes(b));
                }
                op::SHORT_BINBYTES => {
                    let n = usize::from(self.take(1, "SHORT_BINBYTES")?[0]);
                    let b = self.take(n, "SHORT_BINBYTES")?.to_vec();
                    self.push(Node::Bytes(b));
                }
                op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = self.len8("BINBYTES8", at)?;
                    let b = self.take(n, "BINBYTES8")?.to_vec();
                    self.push(Node::Bytes(b));
                }
                // Python 2 `str` (protocol 2 written by Python 2): text if it is UTF-8.
                op::BINSTRING | op::SHORT_BINSTRING => {
                    let n = if code == op::BINSTRING {
                        let n = i32::from_le_bytes(self.array("BINSTRING")?);
                        usize::try_from(n)
                            .map_err(|_| self.malformed(at, "negative BINSTRING length".into()))?
                    } else {
                        usize::from(self.take(1, "SHORT_BINSTRING")?[0])
                    };
                    let b = self.take(n, "BINSTRING")?.to_vec();
                    let node = match String::from_utf8(b) {
                        Ok(s) => Node::Str(s),
                        Err(e) => Node::Bytes(e.into_bytes()),
                    };
                    self.push(node);
                }
                // Containers.
                op::EMPTY_TUPLE => self.push(Node::Tuple(Vec::new())),
                op::EMPTY_LIST => self.push(Node::List(Vec::new())),
                op::EMPTY_DICT => self.push(Node::Dict(Vec::new())),
                op::EMPTY_SET => self.push(Node::Set(Vec::new())),
                op::TUPLE => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Tuple(items));
                }
                op::TUPLE1..=op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1) + 1;
                    let len = self.stack.len();
                    if len < n || self.marks.last().is_some_and(|&m| m > len - n) {
                        return Err(self.underflow(at));
                    }
                    let items = self.stack.split_off(len - n);
                    self.push(Node::Tuple(items));
                }
                op::LIST => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::List(items));
                }
                op::DICT => {
                    let items = self.pop_mark(at)?;
                    let pairs = pairs(items).ok_or_else(|| {
                        self.malformed(at, "DICT with an odd number of items".into())
                    })?;
                    self.push(Node::Dict(pairs));
                }
                op::FROZENSET => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Set(items));
                }
                op::APPEND => {
                    let item = self.pop(at)?;
                    let target = self.top(at)?;
                    self.extend_list(target, vec![item], at)?;
                }
                op::APPENDS => {
                    let items = self.pop_mark(at)?;
                    let target = self.top(at)?;
                    self.extend_list(target, items, at)?;
                }
                op::SETITEM => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    let target = self.top(at)?;
                    self.extend_dict(target, vec![(k, v)], at)?;
                }
                op::SETITEMS => {
                    let items = self.pop_mark(at)?;
                    let pairs = pairs(items).ok_or_else(|| {
                        self.malformed(at, "SETITEMS with an odd number of items".into())
                    })?;
                    let target = self.top(at)?;
                    self.extend_dict(target, pairs, at)?;
                }
                op::ADDITEMS => {
                    let items = self.pop_mark(at)?;
                    let target = self.top(at)?;
                    match &mut self.nodes[target] {
                        Node::Set(s) => s.extend(items),
                        _ => return Err(self.malformed(at, "ADDITEMS on a non-set".into())),
                    }
                }
                // Memo.
                op::BINPUT => {
                    let i = u64::from(self.take(1, "BINPUT")?[0]);
                    self.put(i, at)?;
                }
                op::LONG_BINPUT => {
                    let i = u64::from(u32::from_le_bytes(self.array("LONG_BINPUT")?));
                    self.put(i, at)?;
                }
                op::PUT => {
                    let line = self.line("PUT")?;
                    let i = line
                        .parse()
                        .map_err(|_| self.malformed(at, format!("bad PUT index {line:?}")))?;
                    self.put(i, at)?;
                }
                op::MEMOIZE => {
                    let i = self.memo.len() as u64;
                    self.put(i, at)?;
                }
                op::BINGET => {
                    let i = u64::from(self.take(1, "BINGET")?[0]);
                    self.get(i, at)?;
                }
                op::LONG_BINGET => {
                    let i = u64::from(u32::from_le_bytes(self.array("LONG_BINGET")?));
                    self.get(i, at)?;
                }
                op::GET => {
                    let line = self.line("GET")?;
                    let i = line
                        .parse()
                        .map_err(|_| self.malformed(at, format!("bad GET index {line:?}")))?;
                    self.get(i, at)?;
                }
                // Globals and object construction.
                op::GLOBAL => {
                    let module = self.line("GLOBAL")?.to_owned();
                    let name = self.line("GLOBAL")?.to_owned();
                    self.push_global(module, name, at)?;
                }
                op::STACK_GLOBAL => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (Node::Str(module), Node::Str(name)) =
                        (&self.nodes[module], &self.nodes[name])
                    else {
                        return Err(self.malformed(at, "STACK_GLOBAL needs two strings".into()));
                    };
                    let (module, name) = (module.clone(), name.clone());
                    self.push_global(module, name, at)?;
                }
                op::REDUCE => {
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let args = self.tuple_items(args, at, "REDUCE arguments")?;
                    let id = self.apply(callable, args, at, 0)?;
                    self.stack.push(id);
                }
                op::NEWOBJ => {
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    let args = self.tuple_items(args, at, "NEWOBJ arguments")?;
                    let id = self.apply(cls, args, at, 0)?;
                    self.stack.push(id);
                }
                op::NEWOBJ_EX => {
                    let _kwargs = self.pop(at)?;
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    let args = self.tuple_items(args, at, "NEWOBJ_EX arguments")?;
                    let id = self.apply(cls, args, at, 0)?;
                    self.stack.push(id);
                }
                op::INST => {
                    let module = self.line("INST")?.to_owned();
                    let name = self.line("INST")?.to_owned();
                    let args = self.pop_mark(at)?;
                    self.push_global(module, name, at)?;
                    let cls = self.pop(at)?;
                    let id = self.apply(cls, args, at, 0)?;
                    self.stack.push(id);
                }
                op::OBJ => {
                    let mut items = self.pop_mark(at)?;
                    if items.is_empty() {
                        return Err(self.underflow(at));
                    }
                    let cls = items.remove(0);
                    let id = self.apply(cls, items, at, 0)?;
                    self.stack.push(id);
                }
                op::BUILD => {
                    let state = self.pop(at)?;
                    let target = self.top(at)?;
                    if let Node::Object { state: s, .. } = &mut self.nodes[target] {
                        *s = Some(state);
                    }
                    // Dicts (OrderedDict `_metadata`) and tensors carry attributes that no
                    // conversion needs; Python would set them, we drop them.
                }
                op::BINPERSID => {
                    let pid = self.pop(at)?;
                    let node = self.persistent_load(pid, at)?;
                    self.push(node);
                }
                op::PERSID => {
                    return Err(PickleError::Unsupported {
                        name: "PERSID",
                        offset: at,
                        why: "text persistent ids are not used by torch",
                    });
                }
                op::STRING | op::UNICODE => {
                    return Err(PickleError::Unsupported {
                        name: if code == op::STRING {
                            "STRING"
                        } else {
                            "UNICODE"
                        },
                        offset: at,
                        why: "protocol 0 text strings are not supported; re-save with protocol 2 or later",
                    });
                }
                op::EXT1..=op::EXT4 => {
                    return Err(PickleError::Unsupported {
                        name: "EXT",
                        offset: at,
                        why: "the copyreg extension registry is not supported",
                    });
                }
                op::NEXT_BUFFER | op::READONLY_BUFFER => {
                    return Err(PickleError::Unsupported {
                        name: "NEXT_BUFFER",
                        offset: at,
                        why: "out-of-band buffers are not supported",
                    });
                }
                other => {
                    return Err(PickleError::UnknownOpcode {
                        op: other,
                        offset: at,
                    });
                }
            }
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PickleError> {
        let data: &'a [u8] = self.data;
        let end =
            self.pos
                .checked_add(n)
                .filter(|&e| e <= data.len())
                .ok_or(PickleError::Truncated {
                    offset: data.len(),
                    what,
                })?;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PickleError> {
        let b = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn len8(&mut self, what: &'static str, at: usize) -> Result<usize, PickleError> {
        let n = u64::from_le_bytes(self.array(what)?);
        usize::try_from(n).map_err(|_| self.malformed(at, format!("{what} length {n} too large")))
    }

    fn line(&mut self, what: &'static str) -> Result<&'a str, PickleError> {
        let data: &'a [u8] = self.data;
        let rest = &data[self.pos..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated {
                offset: data.len(),
                what,
            })?;
        let at = self.pos;
        self.pos += nl + 1;
        std::str::from_utf8(&rest[..nl])
            .map_err(|_| self.malformed(at, format!("{what} argument is not UTF-8")))
    }

    fn string(&mut self, n: usize, at: usize) -> Result<String, PickleError> {
        let b = self.take(n, "a string")?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| self.malformed(at, "string is not valid UTF-8".into()))
    }

    fn malformed(&self, offset: usize, msg: String) -> PickleError {
        PickleError::Malformed { offset, msg }
    }

    fn underflow(&self, at: usize) -> PickleError {
        self.malformed(at, "stack underflow".into())
    }

    fn push(&mut self, node: Node) {
        self.nodes.push(node);
        self.stack.push(self.nodes.len() - 1);
    }

    fn new_node(&mut self, node: Node) -> Id {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn pop(&mut self, at: usize) -> Result<Id, PickleError> {
        // A MARK separates frames: items below it belong to an outer opcode.
        if self.marks.last() == Some(&self.stack.len()) {
            return Err(self.underflow(at));
        }
        self.stack.pop().ok_or_else(|| self.underflow(at))
    }

    fn top(&self, at: usize) -> Result<Id, PickleError> {
        if self.marks.last() == Some(&self.stack.len()) {
            return Err(self.underflow(at));
        }
        self.stack.last().copied().ok_or_else(|| self.underflow(at))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Id>, PickleError> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.malformed(at, "no MARK on the stack".into()))?;
        if m > self.stack.len() {
            return Err(self.underflow(at));
        }
        Ok(self.stack.split_off(m))
    }

    fn put(&mut self, i: u64, at: usize) -> Result<(), PickleError> {
        let top = self.top(at)?;
        self.memo.insert(i, top);
        Ok(())
    }

    fn get(&mut self, i: u64, at: usize) -> Result<(), PickleError> {
        let id = *self
            .memo
            .get(&i)
            .ok_or_else(|| self.malformed(at, format!("memo entry {i} is not defined")))?;
        self.stack.push(id);
        Ok(())
    }

    fn push_global(&mut self, module: String, name: String, at: usize) -> Result<(), PickleError> {
        let known = classify(&module, &name, at)?;
        self.push(Node::Global(format!("{module}.{name}"), known));
        Ok(())
    }

    fn tuple_items(&self, id: Id, at: usize, what: &'static str) -> Result<Vec<Id>, PickleError> {
        match &self.nodes[id] {
            Node::Tuple(items) => Ok(items.clone()),
            _ => Err(self.malformed(at, format!("{what} are not a tuple"))),
        }
    }

    fn extend_list(&mut self, target: Id, items: Vec<Id>, at: usize) -> Result<(), PickleError> {
        match &mut self.nodes[target] {
            Node::List(l) => l.extend(items),
            Node::Object { items: l, .. } => l.extend(items),
            _ => return Err(self.malformed(at, "APPEND on a value that is not a list".into())),
        }
        Ok(())
    }

    fn extend_dict(
        &mut self,
        target: Id,
        pairs: Vec<(Id, Id)>,
        at: usize,
    ) -> Result<(), PickleError> {
        match &mut self.nodes[target] {
            Node::Dict(d) => d.extend(pairs),
            Node::Object { entries, .. } => entries.extend(pairs),
            _ => return Err(self.malformed(at, "SETITEM on a value that is not a dict".into())),
        }
        Ok(())
    }

    fn int(&self, id: Id, at: usize, what: &str) -> Result<i64, PickleError> {
        match self.nodes[id] {
            Node::Int(i) => Ok(i),
            Node::Bool(b) => Ok(i64::from(b)),
            _ => Err(self.malformed(at, format!("{what} is not an int"))),
        }
    }

    fn usize_of(&self, id: Id, at: usize, what: &str) -> Result<usize, PickleError> {
        let i = self.int(id, at, what)?;
        usize::try_from(i).map_err(|_| self.malformed(at, format!("{what} is negative ({i})")))
    }

    fn str_of(&self, id: Id, at: usize, what: &str) -> Result<String, PickleError> {
        match &self.nodes[id] {
            Node::Str(s) => Ok(s.clone()),
            _ => Err(self.malformed(at, format!("{what} is not a string"))),
        }
    }

    /// Interprets a call of `callable(*args)` without calling anything.
    fn apply(
        &mut self,
        callable: Id,
        args: Vec<Id>,
        at: usize,
        depth: usize,
    ) -> Result<Id, PickleError> {
        let (class, known) = match &self.nodes[callable] {
            Node::Global(g, k) => (g.clone(), *k),
            other => {
                let what = node_kind(other);
                return Err(self.malformed(at, format!("cannot call a {what} (only globals)")));
            }
        };
        let node = match known {
            Known::OrderedDict => {
                let pairs = match args.as_slice() {
                    [] => Vec::new(),
                    [items] => self.pairs_of(*items, at)?,
                    _ => return Err(self.malformed(at, "OrderedDict takes one argument".into())),
                };
                Node::Dict(pairs)
            }
            Known::Set => match args.as_slice() {
                [] => Node::Set(Vec::new()),
                [items] => match &self.nodes[*items] {
                    Node::List(v) | Node::Tuple(v) | Node::Set(v) => Node::Set(v.clone()),
                    _ => return Err(self.malformed(at, "set() of a non-sequence".into())),
                },
                _ => return Err(self.malformed(at, "set takes one argument".into())),
            },
            Known::Bytes | Known::ByteArray => match args.as_slice() {
                [] => Node::Bytes(Vec::new()),
                [b] => match &self.nodes[*b] {
                    Node::Bytes(v) => Node::Bytes(v.clone()),
                    _ => return Err(self.malformed(at, format!("{class}() of a non-bytes"))),
                },
                [s, enc] => self.encode(*s, *enc, at)?,
                _ => return Err(self.malformed(at, format!("{class}() arguments"))),
            },
            Known::CodecsEncode => match args.as_slice() {
                [s, enc] => self.encode(*s, *enc, at)?,
                _ => return Err(self.malformed(at, "_codecs.encode takes two arguments".into())),
            },
            Known::RebuildTensorV2 | Known::RebuildTensor => self.rebuild_tensor(&args, at)?,
            Known::RebuildParameter => match args.first() {
                Some(&t) if matches!(self.nodes[t], Node::Tensor(_)) => return Ok(t),
                _ => return Err(self.malformed(at, "_rebuild_parameter of a non-tensor".into())),
            },
            Known::RebuildFromTypeV2 => {
                // (func, new_type, args, state): a tensor subclass; rebuild the plain tensor.
                if depth > 4 {
                    return Err(self.malformed(at, "nested _rebuild_from_type_v2".into()));
                }
                let (Some(&func), Some(&inner)) = (args.first(), args.get(2)) else {
                    return Err(self.malformed(at, "_rebuild_from_type_v2 arguments".into()));
                };
                let inner = self.tuple_items(inner, at, "_rebuild_from_type_v2 arguments")?;
                return self.apply(func, inner, at, depth + 1);
            }
            Known::Storage(_) | Known::Opaque => Node::Object {
                class,
                args,
                state: None,
                items: Vec::new(),
                entries: Vec::new(),
            },
        };
        self.alloc_budget = self
            .alloc_budget
            .checked_sub(heap_size(&node))
            .ok_or_else(|| {
                PickleError::TooComplex(format!(
                    "calls at byte {at} and before copy more than {} MiB (a small pickle \
                     expanding shared values)",
                    byte_budget(self.data.len()) >> 20
                ))
            })?;
        Ok(self.new_node(node))
    }

    fn pairs_of(&self, id: Id, at: usize) -> Result<Vec<(Id, Id)>, PickleError> {
        let items = match &self.nodes[id] {
            Node::List(v) | Node::Tuple(v) => v,
            _ => return Err(self.malformed(at, "OrderedDict of a non-sequence".into())),
        };
        items
            .iter()
            .map(|&p| match &self.nodes[p] {
                Node::List(kv) | Node::Tuple(kv) if kv.len() == 2 => Ok((kv[0], kv[1])),
                _ => Err(self.malformed(at, "OrderedDict item is not a pair".into())),
            })
            .collect()
    }

    fn encode(&self, s: Id, enc: Id, at: usize) -> Result<Node, PickleError> {
        let s = self.str_of(s, at, "_codecs.encode text")?;
        let enc = self.str_of(enc, at, "_codecs.encode encoding")?;
        match enc.to_ascii_lowercase().replace('_', "-").as_str() {
            "latin1" | "latin-1" | "iso-8859-1" => s
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect::<Option<Vec<u8>>>()
                .map(Node::Bytes)
                .ok_or_else(|| self.malformed(at, "latin-1 text out of range".into())),
            "utf-8" | "utf8" => Ok(Node::Bytes(s.into_bytes())),
            other => Err(self.malformed(at, format!("unsupported encoding {other:?}"))),
        }
    }

    fn persistent_load(&mut self, pid: Id, at: usize) -> Result<Node, PickleError> {
        if !self.opts.torch_storages {
            return Err(PickleError::Unsupported {
                name: "BINPERSID",
                offset: at,
                why: "persistent ids only occur in torch checkpoints",
            });
        }
        let items = self.tuple_items(pid, at, "persistent id")?;
        let [tag, ty, key, location, numel] = items.as_slice() else {
            return Err(self.malformed(at, "torch persistent id is not a 5-tuple".into()));
        };
        if self.str_of(*tag, at, "persistent id tag")? != "storage" {
            return Err(self.malformed(at, "persistent id is not a 'storage'".into()));
        }
        let dtype = match &self.nodes[*ty] {
            Node::Global(_, Known::Storage(Some(d))) => *d,
            Node::Global(g, _) => {
                return Err(self.malformed(
                    at,
                    format!(
                        "unsupported storage type {g} (supported: Float, Half, BFloat16, Double, \
                         Long, Int, Short, Char, Byte, Bool, ComplexFloat)"
                    ),
                ));
            }
            _ => return Err(self.malformed(at, "storage type is not a class".into())),
        };
        let key = self.str_of(*key, at, "storage key")?;
        let location = self.str_of(*location, at, "storage location")?;
        let numel = self.usize_of(*numel, at, "storage size")? as u64;
        Ok(Node::Storage(StorageRef {
            key,
            dtype,
            location,
            numel,
        }))
    }

    fn rebuild_tensor(&mut self, args: &[Id], at: usize) -> Result<Node, PickleError> {
        let (Some(&storage), Some(&offset), Some(&size), Some(&stride)) =
            (args.first(), args.get(1), args.get(2), args.get(3))
        else {
            return Err(self.malformed(at, "_rebuild_tensor_v2 needs 4+ arguments".into()));
        };
        let Node::Storage(storage) = &self.nodes[storage] else {
            return Err(self.malformed(at, "tensor storage is not a persistent storage".into()));
        };
        let storage = storage.clone();
        let offset = self.usize_of(offset, at, "storage offset")? as u64;
        let dims = |id: Id, what: &str| -> Result<Vec<usize>, PickleError> {
            let items = match &self.nodes[id] {
                Node::Tuple(v) | Node::List(v) => v,
                _ => return Err(self.malformed(at, format!("tensor {what} is not a tuple"))),
            };
            items.iter().map(|&i| self.usize_of(i, at, what)).collect()
        };
        let shape = dims(size, "size")?;
        let stride = dims(stride, "stride")?;
        if shape.len() != stride.len() {
            return Err(self.malformed(
                at,
                format!("tensor size {shape:?} and stride {stride:?} differ in rank"),
            ));
        }
        let requires_grad = args
            .get(4)
            .is_some_and(|&r| matches!(self.nodes[r], Node::Bool(true)));
        let too_large = || self.malformed(at, format!("tensor size {shape:?} is too large"));
        shape
            .iter()
            .try_fold(storage.dtype.size(), |acc, &s| acc.checked_mul(s))
            .ok_or_else(too_large)?;
        // Every element the view can reach must lie inside the storage.
        if shape.iter().all(|&s| s > 0) {
            let mut last = u128::from(offset);
            for (&s, &st) in shape.iter().zip(&stride) {
                last = (s as u128 - 1)
                    .checked_mul(st as u128)
                    .and_then(|d| d.checked_add(last))
                    .ok_or_else(too_large)?;
            }
            if last >= u128::from(storage.numel) {
                return Err(self.malformed(
                    at,
                    format!(
                        "tensor view (offset {offset}, size {shape:?}, stride {stride:?}) reaches \
                         past the end of storage {:?} ({} elements)",
                        storage.key, storage.numel
                    ),
                ));
            }
        }
        // A view with more elements than its storage repeats elements (a stride of 0, or
        // strides that overlap): reading it would materialize a tensor far larger than the
        // file (a few bytes of storage, gigabytes of view). torch.save of a normal module
        // never writes one; `.contiguous()` before saving gives a real tensor.
        let numel: u128 = shape.iter().map(|&s| s as u128).product();
        if numel > u128::from(storage.numel) {
            // `x.expand(…)` saved as is: legal, and read by copying, but the copies of every
            // such view together must stay within the pickle's allocation budget.
            let bytes = usize::try_from(numel)
                .ok()
                .and_then(|n| n.checked_mul(storage.dtype.size()));
            match bytes.and_then(|b| self.alloc_budget.checked_sub(b)) {
                Some(left) => self.alloc_budget = left,
                None => {
                    return Err(self.malformed(
                        at,
                        format!(
                            "tensor view (size {shape:?}, stride {stride:?}) has {numel} \
                             elements but its storage {:?} holds only {}: overlapping \
                             (e.g. stride-0) views this large are not read; save the tensor \
                             with .contiguous()",
                            storage.key, storage.numel
                        ),
                    ));
                }
            }
        }
        Ok(Node::Tensor(TensorRef {
            storage,
            offset,
            shape,
            stride,
            requires_grad,
        }))
    }

    /// Converts the arena rooted at `root` into a tree, within a size budget.
    pub(super) fn into_value(self, root: Id) -> Result<Value, PickleError> {
        let mut conv = Converter {
            nodes: &self.nodes,
            visiting: vec![false; self.nodes.len()],
            budget: MAX_VALUES.min(self.nodes.len().saturating_mul(16).max(1 << 20)),
            bytes: byte_budget(self.data.len()),
        };
        conv.convert(root, 0)
    }
}

fn node_kind(n: &Node) -> &'static str {
    match n {
        Node::None => "None",
        Node::Bool(_) => "bool",
        Node::Int(_) | Node::BigInt(_) => "int",
        Node::Float(_) => "float",
        Node::Str(_) => "str",
        Node::Bytes(_) => "bytes",
        Node::List(_) => "list",
        Node::Tuple(_) => "tuple",
        Node::Dict(_) => "dict",
        Node::Set(_) => "set",
        Node::Global(..) => "global",
        Node::Storage(_) => "storage",
        Node::Tensor(_) => "tensor",
        Node::Object { .. } => "object",
    }
}

fn pairs(items: Vec<Id>) -> Option<Vec<(Id, Id)>> {
    if !items.len().is_multiple_of(2) {
        return None;
    }
    Some(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

/// A LONG1/LONG4 payload: little-endian two's complement.
fn long_node(bytes: &[u8]) -> Node {
    if bytes.is_empty() {
        return Node::Int(0);
    }
    if bytes.len() > 8 {
        return Node::BigInt(bytes.to_vec());
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut buf = [if negative { 0xFF } else { 0 }; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    Node::Int(i64::from_le_bytes(buf))
}

/// Hashable dict keys, for Python's "last write wins, first position kept" semantics.
#[derive(PartialEq, Eq, Hash)]
enum KeyRepr<'v> {
    Str(&'v str),
    Int(i64),
    Bytes(&'v [u8]),
}

fn key_repr(v: &Value) -> Option<KeyRepr<'_>> {
    match v {
        Value::Str(s) => Some(KeyRepr::Str(s)),
        Value::Int(i) => Some(KeyRepr::Int(*i)),
        Value::Bool(b) => Some(KeyRepr::Int(i64::from(*b))),
        Value::Bytes(b) => Some(KeyRepr::Bytes(b)),
        _ => None,
    }
}

struct Converter<'n> {
    nodes: &'n [Node],
    visiting: Vec<bool>,
    budget: usize,
    /// Bytes of strings, bytes and big ints the tree may still copy: a shared value is copied
    /// once per reference, so many references to one large value must not multiply it.
    bytes: usize,
}

impl Converter<'_> {
    fn convert(&mut self, id: Id, depth: usize) -> Result<Value, PickleError> {
        if depth > MAX_DEPTH {
            return Err(PickleError::TooComplex(format!(
                "nested more than {MAX_DEPTH} levels deep"
            )));
        }
        self.budget = self.budget.checked_sub(1).ok_or_else(|| {
            PickleError::TooComplex("shared references expand to too many values".into())
        })?;
        let copied = match &self.nodes[id] {
            Node::Str(s) => s.len(),
            Node::Bytes(b) | Node::BigInt(b) => b.len(),
            _ => 0,
        };
        self.bytes = self.bytes.checked_sub(copied).ok_or_else(|| {
            PickleError::TooComplex(
                "shared references expand to too many bytes (one large value referenced \
                 many times)"
                    .into(),
            )
        })?;
        if self.visiting[id] {
            return Ok(Value::Recursive);
        }
        self.visiting[id] = true;
        let v = self.convert_node(id, depth);
        self.visiting[id] = false;
        v
    }

    fn list(&mut self, ids: &[Id], depth: usize) -> Result<Vec<Value>, PickleError> {
        ids.iter().map(|&i| self.convert(i, depth + 1)).collect()
    }

    fn dict(
        &mut self,
        pairs: &[(Id, Id)],
        depth: usize,
    ) -> Result<Vec<(Value, Value)>, PickleError> {
        let mut converted = Vec::with_capacity(pairs.len());
        for &(k, v) in pairs {
            converted.push((self.convert(k, depth + 1)?, self.convert(v, depth + 1)?));
        }
        // For each entry, the index of an earlier entry with an equal key.
        let dup: Vec<Option<usize>> = {
            let mut index: HashMap<KeyRepr<'_>, usize> = HashMap::new();
            converted
                .iter()
                .enumerate()
                .map(|(i, (k, _))| {
                    let r = key_repr(k)?;
                    match index.get(&r) {
                        Some(&first) => Some(first),
                        None => {
                            index.insert(r, i);
                            None
                        }
                    }
                })
                .collect()
        };
        let mut out: Vec<(Value, Value)> = Vec::with_capacity(converted.len());
        let mut slot: Vec<usize> = vec![usize::MAX; converted.len()];
        for (i, (kv, d)) in converted.into_iter().zip(dup).enumerate() {
            match d {
                Some(first) => out[slot[first]].1 = kv.1,
                None => {
                    slot[i] = out.len();
                    out.push(kv);
                }
            }
        }
        Ok(out)
    }

    fn convert_node(&mut self, id: Id, depth: usize) -> Result<Value, PickleError> {
        let nodes = self.nodes;
        Ok(match &nodes[id] {
            Node::None => Value::None,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::BigInt(b) => Value::BigInt(b.clone()),
            Node::Float(f) => Value::Float(*f),
            Node::Str(s) => Value::Str(s.clone()),
            Node::Bytes(b) => Value::Bytes(b.clone()),
            Node::List(v) => Value::List(self.list(v, depth)?),
            Node::Tuple(v) => Value::Tuple(self.list(v, depth)?),
            Node::Set(v) => Value::Set(self.list(v, depth)?),
            Node::Dict(p) => Value::Dict(self.dict(p, depth)?),
            Node::Global(g, _) => Value::Global(g.clone()),
            Node::Storage(s) => Value::Storage(s.clone()),
            Node::Tensor(t) => Value::Tensor(t.clone()),
            Node::Object {
                class,
                args,
                state,
                items,
                entries,
            } => Value::Object(Box::new(Object {
                class: class.clone(),
                args: self.list(args, depth)?,
                state: match state {
                    Some(s) => Some(self.convert(*s, depth + 1)?),
                    None => None,
                },
                items: self.list(items, depth)?,
                entries: self.dict(entries, depth)?,
            })),
        })
    }
}
