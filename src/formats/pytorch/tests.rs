//! Tests of the torch reader: real files written by torch (golden sha256 per tensor from
//! `scripts/golden/pytorch_fixtures.py`) and crafted hostile, truncated and garbage inputs.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::pickle::{Options, PickleError, unpickle};
use super::zip::make_zip;
use super::*;
use crate::formats::DType;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Golden lines `<file> <tensor> <dtype> [<shape>] <sha256>` for one file, in file order.
fn golden(file: &str) -> Vec<(String, String, String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pytorch/tensors.txt");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0] == file).then(|| (f[1].into(), f[2].into(), f[3].into(), f[4].into()))
        })
        .collect()
}

fn check_against_golden(file: &str) {
    let ckpt = Checkpoint::open(&fixture(file)).unwrap();
    let tensors = ckpt.state_dict().unwrap();
    let expected = golden(file);
    assert!(!expected.is_empty(), "no golden for {file}");
    let got: Vec<(String, String, String, String)> = tensors
        .iter()
        .map(|t| {
            let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
            let digest = Sha256::digest(t.data.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            (
                t.name.clone(),
                t.dtype.to_string(),
                format!("[{}]", dims.join(",")),
                hex,
            )
        })
        .collect();
    assert_eq!(got, expected, "{file}");
}

#[test]
fn strided_views_and_all_dtypes_match_torch() {
    for file in [
        "pytorch/mixed-p2.pt",
        "pytorch/mixed-p4.pt",
        "pytorch/mixed-p5.pt",
        "pytorch/state-dict.bin",
    ] {
        check_against_golden(file);
    }
}

#[test]
fn tinylm_checkpoints_match_torch() {
    check_against_golden("tinylm-gpt2/last.ckpt");
    check_against_golden("tinylm-llama3/last.ckpt");
}

#[test]
fn contiguous_tensors_are_zero_copy_and_ties_share_storage() {
    let ckpt = Checkpoint::open(&fixture("pytorch/mixed-p2.pt")).unwrap();
    let sd = ckpt.state_dict().unwrap();
    let by_name = |n: &str| sd.iter().find(|t| t.name == n).unwrap();
    assert!(matches!(by_name("plain").data, TensorBytes::Mapped { .. }));
    assert!(matches!(
        by_name("offset_rows").data,
        TensorBytes::Mapped { .. }
    ));
    assert!(matches!(by_name("transposed").data, TensorBytes::Owned(_)));
    let (TensorBytes::Mapped { range: a, .. }, TensorBytes::Mapped { range: b, .. }) =
        (&by_name("tied_a").data, &by_name("tied_b").data)
    else {
        panic!("tied tensors should be mapped");
    };
    assert_eq!(a, b);
    let refs = ckpt.state_dict_refs().unwrap();
    let storage = |n: &str| &refs.iter().find(|(k, _)| *k == n).unwrap().1.storage;
    assert_eq!(storage("tied_a").key, storage("plain").key);
    assert_eq!(storage("offset_rows").key, storage("plain").key);
}

#[test]
fn non_tensor_values_are_rebuilt() {
    let ckpt = Checkpoint::open(&fixture("pytorch/mixed-p2.pt")).unwrap();
    let root = ckpt.root();
    assert_eq!(root.get("epoch"), Some(&Value::Int(3)));
    assert_eq!(root.get("name"), Some(&Value::Str("héllo ✓".into())));
    assert_eq!(root.get("blob"), Some(&Value::Bytes(vec![0, 1, 0xff])));
    assert_eq!(root.get("ratio"), Some(&Value::Float(0.125)));
    assert_eq!(root.get("neg"), Some(&Value::Int(-(1 << 40))));
    // 2**70 as little-endian two's complement.
    let mut big = vec![0u8; 9];
    big[8] = 0x40;
    assert_eq!(root.get("big"), Some(&Value::BigInt(big)));
    assert_eq!(
        root.get("flags"),
        Some(&Value::List(vec![
            Value::Bool(true),
            Value::Bool(false),
            Value::None
        ]))
    );
    assert_eq!(
        root.get("pair"),
        Some(&Value::Tuple(vec![Value::Int(1), Value::Str("two".into())]))
    );
    let Some(Value::Set(tags)) = root.get("tags") else {
        panic!("tags should be a set");
    };
    assert_eq!(tags.len(), 2);
    let nested = root.get("nested").unwrap();
    assert_eq!(
        nested.get("od"),
        Some(&Value::Dict(vec![(Value::Str("x".into()), Value::Int(1))]))
    );
}

#[test]
fn lightning_checkpoint_top_level() {
    let ckpt = Checkpoint::open(&fixture("tinylm-llama3/last.ckpt")).unwrap();
    let keys: Vec<&str> = ckpt
        .root()
        .as_dict()
        .unwrap()
        .iter()
        .filter_map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "epoch",
            "global_step",
            "pytorch-lightning_version",
            "state_dict",
            "loops",
            "callbacks",
            "optimizer_states",
            "lr_schedulers"
        ]
    );
    let refs = ckpt.state_dict_refs().unwrap();
    let (_, freqs) = refs
        .iter()
        .find(|(k, _)| *k == "model.rope._freqs_cis")
        .unwrap();
    assert_eq!(freqs.storage.dtype, DType::C64);
    assert_eq!(freqs.shape, [32, 8]);
}

#[test]
fn legacy_format_asks_to_resave() {
    let err = Checkpoint::open(&fixture("pytorch/legacy.pt")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("legacy torch serialization"), "{msg}");
    assert!(msg.contains("torch >= 1.6"), "{msg}");
}

#[test]
fn not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.ckpt");
    std::fs::write(&p, b"hello, this is text").unwrap();
    let msg = Checkpoint::open(&p).unwrap_err().to_string();
    assert!(msg.contains("not a torch checkpoint"), "{msg}");
    std::fs::write(&p, b"").unwrap();
    assert!(Checkpoint::open(&p).is_err());
}

/// Writes `data.pkl` (and storages) into a torch-style zip in a temp dir and opens it.
fn open_crafted(
    pkl: &[u8],
    storages: &[(&str, &[u8])],
    byteorder: &[u8],
) -> Result<Checkpoint, PytorchError> {
    let mut entries: Vec<(String, &[u8])> = vec![
        ("archive/data.pkl".into(), pkl),
        ("archive/byteorder".into(), byteorder),
    ];
    for (k, d) in storages {
        entries.push((format!("archive/data/{k}"), d));
    }
    let refs: Vec<(&str, &[u8])> = entries.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("crafted.ckpt");
    std::fs::write(&p, make_zip(&refs)).unwrap();
    Checkpoint::open(&p)
}

/// A small pickle assembler for crafted inputs.
#[derive(Default)]
struct Pk(Vec<u8>);

impl Pk {
    fn new() -> Self {
        Pk(vec![0x80, 2])
    }
    fn op(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn global(self, module: &str, name: &str) -> Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    fn stack_global(self, module: &str, name: &str) -> Self {
        self.str(module).str(name).op(&[0x93])
    }
    fn str(mut self, s: &str) -> Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn int(self, i: u8) -> Self {
        self.op(&[b'K', i])
    }
    /// `('storage', torch.<ty>, key, 'cpu', numel)` as a persistent id.
    fn storage(self, ty: &str, key: &str, numel: u8) -> Self {
        self.op(b"(")
            .str("storage")
            .global("torch", ty)
            .str(key)
            .str("cpu")
            .int(numel)
            .op(b"tQ")
    }
    fn stop(self) -> Vec<u8> {
        self.op(b".").0
    }
}

/// `{'w': _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())}`.
fn tensor_pickle(ty: &str, numel: u8, offset: u8, size: &[u8], stride: &[u8]) -> Vec<u8> {
    let mut p = Pk::new()
        .op(b"}")
        .str("w")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(b"(")
        .storage(ty, "0", numel)
        .int(offset)
        .op(b"(");
    for &s in size {
        p = p.int(s);
    }
    p = p.op(b"t(");
    for &s in stride {
        p = p.int(s);
    }
    p.op(b"t\x89")
        .global("collections", "OrderedDict")
        .op(b")Rt")
        .op(b"R")
        .op(b"s")
        .stop()
}

#[test]
fn crafted_strided_tensor_and_big_endian() {
    // 2x3 view with strides (1, 2) over 6 f32 values 0..5 (a transposed 3x2 matrix).
    let data: Vec<u8> = (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let pkl = tensor_pickle("FloatStorage", 6, 0, &[2, 3], &[1, 2]);
    let ckpt = open_crafted(&pkl, &[("0", &data)], b"little").unwrap();
    let t = &ckpt.state_dict().unwrap()[0];
    let vals: Vec<f32> = t
        .data
        .as_bytes()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(vals, [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);

    // The same storage written big-endian, contiguous with an offset.
    let be: Vec<u8> = (0..6u32).flat_map(|i| (i as f32).to_be_bytes()).collect();
    let pkl = tensor_pickle("FloatStorage", 6, 2, &[4], &[1]);
    let ckpt = open_crafted(&pkl, &[("0", &be)], b"big").unwrap();
    let t = &ckpt.state_dict().unwrap()[0];
    let expected: Vec<u8> = (2..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    assert_eq!(t.data.as_bytes(), expected);
}

#[test]
fn crafted_out_of_bounds_views_are_rejected() {
    let data = [0u8; 24];
    // Reaches element 6 of a 6-element storage.
    let pkl = tensor_pickle("FloatStorage", 6, 1, &[2, 3], &[3, 1]);
    let msg = open_crafted(&pkl, &[("0", &data)], b"little")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("past the end of storage"), "{msg}");
    // Declares more elements than the entry holds.
    let pkl = tensor_pickle("FloatStorage", 7, 0, &[7], &[1]);
    let msg = open_crafted(&pkl, &[("0", &data)], b"little")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("truncated"), "{msg}");
    // Missing storage entry.
    let pkl = tensor_pickle("FloatStorage", 6, 0, &[6], &[1]);
    let msg = open_crafted(&pkl, &[], b"little").unwrap_err().to_string();
    assert!(msg.contains("is missing"), "{msg}");
    // Unsupported storage type.
    let pkl = tensor_pickle("ComplexDoubleStorage", 1, 0, &[1], &[1]);
    let msg = open_crafted(&pkl, &[("0", &data)], b"little")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unsupported storage type"), "{msg}");
}

#[test]
fn dangerous_globals_are_refused() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            Pk::new()
                .global("os", "system")
                .str("echo pwned")
                .op(b"\x85R")
                .stop(),
            "os.system",
        ),
        (
            Pk::new()
                .global("posix", "system")
                .str("id")
                .op(b"\x85R")
                .stop(),
            "posix.system",
        ),
        (
            Pk::new()
                .stack_global("subprocess", "Popen")
                .str("id")
                .op(b"\x85R")
                .stop(),
            "subprocess.Popen",
        ),
        (
            Pk::new()
                .stack_global("builtins", "eval")
                .str("1+1")
                .op(b"\x85R")
                .stop(),
            "builtins.eval",
        ),
        (
            Pk::new()
                .global("builtins", "exec")
                .str("x")
                .op(b"\x85R")
                .stop(),
            "builtins.exec",
        ),
        (
            Pk::new().global("__builtin__", "getattr").op(b")R").stop(),
            "__builtin__.getattr",
        ),
        (
            Pk::new().global("builtins", "__import__").op(b")R").stop(),
            "builtins.__import__",
        ),
        (
            Pk::new().global("os.path", "join").op(b")R").stop(),
            "os.path.join",
        ),
        (
            Pk::new().global("torch", "load").op(b")R").stop(),
            "torch.load",
        ),
        (
            Pk::new().stack_global("nt", "system").op(b")R").stop(),
            "nt.system",
        ),
        (
            Pk::new()
                .stack_global("operator", "attrgetter")
                .op(b")R")
                .stop(),
            "operator.attrgetter",
        ),
        // Referenced without being called is refused just the same.
        (
            Pk::new().op(b"]").global("os", "system").op(b"a").stop(),
            "os.system",
        ),
    ];
    for (pkl, global) in cases {
        let err = unpickle(&pkl, Options::default()).unwrap_err();
        assert!(
            matches!(&err, PickleError::Forbidden { global: g, .. } if g == global),
            "{global}: {err}"
        );
        assert!(err.to_string().contains("refusing to load"));
        // Inside a checkpoint the error names the file and the entry.
        let msg = open_crafted(&pkl, &[], b"little").unwrap_err().to_string();
        assert!(
            msg.contains("crafted.ckpt") && msg.contains("data.pkl"),
            "{msg}"
        );
        assert!(msg.contains(global), "{msg}");
    }
}

#[test]
fn unknown_classes_are_kept_as_data_never_called() {
    // `__main__.Config(3, key='v')` via NEWOBJ + BUILD: described, not constructed.
    let pkl = Pk::new()
        .global("__main__", "Config")
        .int(3)
        .op(b"\x85\x81}")
        .str("key")
        .str("v")
        .op(b"sb")
        .stop();
    let v = unpickle(&pkl, Options::default()).unwrap();
    let Value::Object(o) = v else {
        panic!("expected an object, got {v:?}");
    };
    assert_eq!(o.class, "__main__.Config");
    assert_eq!(o.args, [Value::Int(3)]);
    assert_eq!(
        o.state,
        Some(Value::Dict(vec![(
            Value::Str("key".into()),
            Value::Str("v".into())
        )]))
    );
}

#[test]
fn reduce_of_a_non_global_is_an_error() {
    let pkl = Pk::new().op(b"])R").stop();
    let err = unpickle(&pkl, Options::default()).unwrap_err();
    assert!(err.to_string().contains("cannot call a list"), "{err}");
}

#[test]
fn memo_sharing_cycles_and_duplicates() {
    // A list memoized before it is filled: the memo sees the appends (Python semantics).
    let pkl = Pk::new().op(b"]q\x00(K\x01K\x02e").op(b"h\x00\x86").stop();
    let v = unpickle(&pkl, Options::default()).unwrap();
    let l = Value::List(vec![Value::Int(1), Value::Int(2)]);
    assert_eq!(v, Value::Tuple(vec![l.clone(), l]));
    // A list that contains itself.
    let pkl = Pk::new().op(b"]q\x00h\x00a").stop();
    let v = unpickle(&pkl, Options::default()).unwrap();
    assert_eq!(v, Value::List(vec![Value::Recursive]));
    // Duplicate dict keys: last value wins, first position kept.
    let pkl = Pk::new()
        .op(b"}(")
        .str("a")
        .int(1)
        .str("b")
        .int(2)
        .str("a")
        .int(3)
        .op(b"u")
        .stop();
    let v = unpickle(&pkl, Options::default()).unwrap();
    assert_eq!(
        v,
        Value::Dict(vec![
            (Value::Str("a".into()), Value::Int(3)),
            (Value::Str("b".into()), Value::Int(2))
        ])
    );
}

#[test]
fn exponential_sharing_and_deep_nesting_are_bounded() {
    // Each level is a pair of the previous one: 2^200 leaves if expanded naively.
    let mut p = Pk::new().op(b"N");
    for _ in 0..200 {
        p = p.op(b"q\x00h\x00\x86");
    }
    let err = unpickle(&p.stop(), Options::default()).unwrap_err();
    assert!(matches!(err, PickleError::TooComplex(_)), "{err}");
    // 100k nested lists.
    let mut p = Pk::new();
    for _ in 0..100_000 {
        p = p.op(b"]");
    }
    for _ in 0..99_999 {
        p = p.op(b"a");
    }
    let err = unpickle(&p.stop(), Options::default()).unwrap_err();
    assert!(matches!(err, PickleError::TooComplex(_)), "{err}");
}

#[test]
fn structural_errors_are_reported() {
    let cases: Vec<(&[u8], &str)> = vec![
        (b"\x80\x02", "truncated"),
        (b"\x80\x02K", "truncated"),
        (b"\x80\x02X\xff\xff\xff\x7fabc.", "truncated"),
        (b"\x80\x02\xff.", "unknown opcode 0xff"),
        (b"\x80\x09N.", "unknown pickle protocol 9"),
        (b"\x80\x02.", "stack underflow"),
        (b"\x80\x02a.", "stack underflow"),
        (b"\x80\x02h\x05.", "memo entry 5 is not defined"),
        (b"\x80\x02t.", "no MARK"),
        (b"\x80\x02(.", "stack underflow"),
        (b"\x80\x02NN\x93.", "STACK_GLOBAL needs two strings"),
        (b"\x80\x02(S'x'\n.", "protocol 0 text strings"),
        (b"\x80\x02\x82\x01.", "extension registry"),
        (b"\x80\x02NQ.", "persistent ids only occur"),
        (b"\x80\x02K\x01K\x02K\x03s.", "not a dict"),
        (b"\x80\x02X\x02\x00\x00\x00\xff\xfe.", "not valid UTF-8"),
    ];
    for (pkl, want) in cases {
        let err = unpickle(pkl, Options::default()).unwrap_err().to_string();
        assert!(err.contains(want), "{pkl:?}: {err}");
    }
}

#[test]
fn every_prefix_of_real_pickles_fails_cleanly() {
    let tok = std::fs::read(fixture("tinylm-gpt2/tokenizer.pkl")).unwrap();
    assert!(unpickle(&tok, Options::default()).is_ok());
    for n in 0..tok.len() {
        assert!(
            unpickle(&tok[..n], Options::default()).is_err(),
            "prefix {n}"
        );
    }
    let map = map_file(&fixture("tinylm-gpt2/last.ckpt")).unwrap();
    let idx = zip::ZipIndex::parse(&map).unwrap();
    let pkl = &map[idx.get("archive/data.pkl").unwrap().range.clone()];
    let opts = Options {
        torch_storages: true,
    };
    assert!(unpickle(pkl, opts).is_ok());
    for n in (0..pkl.len()).step_by(7) {
        assert!(unpickle(&pkl[..n], opts).is_err(), "prefix {n}");
    }
}

/// xorshift64*: deterministic garbage without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn garbage_and_mutated_pickles_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let opts = Options {
        torch_storages: true,
    };
    for _ in 0..3000 {
        let len = (rng.next() % 64) as usize;
        let mut buf: Vec<u8> = vec![0x80, 2];
        // Bias towards real opcodes so the VM gets past the first byte.
        const OPS: &[u8] =
            b"()NKMJ]}tlduaes.qhrjXCBRQ\x85\x86\x87\x88\x89\x8a\x8c\x93\x94\x95b0123";
        for _ in 0..len {
            let r = rng.next();
            buf.push(if r.is_multiple_of(3) {
                (r >> 8) as u8
            } else {
                OPS[(r >> 8) as usize % OPS.len()]
            });
        }
        let _ = unpickle(&buf, opts);
    }
    let map = map_file(&fixture("tinylm-llama3/last.ckpt")).unwrap();
    let idx = zip::ZipIndex::parse(&map).unwrap();
    let pkl = map[idx.get("archive/data.pkl").unwrap().range.clone()].to_vec();
    for _ in 0..400 {
        let mut m = pkl.clone();
        for _ in 0..3 {
            let i = (rng.next() as usize) % m.len();
            m[i] = rng.next() as u8;
        }
        let _ = unpickle(&m, opts);
    }
}

#[test]
fn truncated_and_corrupted_checkpoints_fail_cleanly() {
    let bytes = std::fs::read(fixture("tinylm-gpt2/last.ckpt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.ckpt");
    for n in [
        0,
        1,
        4,
        100,
        14_000,
        bytes.len() / 2,
        bytes.len() - 23,
        bytes.len() - 1,
    ] {
        std::fs::write(&p, &bytes[..n]).unwrap();
        assert!(Checkpoint::open(&p).is_err(), "truncated to {n}");
    }
    // A flipped byte inside data.pkl is caught by its CRC.
    let mut c = bytes.clone();
    c[200] ^= 0x55;
    std::fs::write(&p, &c).unwrap();
    let msg = Checkpoint::open(&p).unwrap_err().to_string();
    assert!(msg.contains("CRC mismatch"), "{msg}");
    // Corruption anywhere else never panics.
    let mut rng = Rng(42);
    for _ in 0..200 {
        let mut c = bytes.clone();
        let i = (rng.next() as usize) % c.len();
        c[i] = rng.next() as u8;
        std::fs::write(&p, &c).unwrap();
        if let Ok(ck) = Checkpoint::open(&p) {
            let _ = ck.state_dict();
        }
    }
}

/// `[b, b, …]`: `n` references to one `len`-byte bytes object (BINBYTES, memoized).
fn shared_bytes_pickle(len: usize, n: usize) -> Vec<u8> {
    let mut p = Pk::new().op(b"](");
    p.0.push(b'B');
    p.0.extend_from_slice(&(len as u32).to_le_bytes());
    p.0.extend(std::iter::repeat_n(b'x', len));
    p = p.op(b"q\x00");
    for _ in 1..n {
        p = p.op(b"h\x00");
    }
    p.op(b"e").stop()
}

#[test]
fn shared_references_to_large_values_are_bounded_in_bytes() {
    // 1 MiB referenced 100k times: 100 GB if every reference were copied.
    let pkl = shared_bytes_pickle(1 << 20, 100_000);
    let err = unpickle(&pkl, Options::default()).unwrap_err();
    assert!(
        matches!(&err, PickleError::TooComplex(m) if m.contains("too many bytes")),
        "{err}"
    );
    // A few references to a large value are fine.
    let v = unpickle(&shared_bytes_pickle(1 << 20, 8), Options::default()).unwrap();
    assert!(matches!(v, Value::List(ref l) if l.len() == 8));
}

#[test]
fn calls_that_copy_large_values_are_bounded() {
    // bytearray(b) called 100k times on one memoized 1 MiB value.
    let mut p = Pk::new().global("builtins", "bytearray").op(b"q\x01");
    p.0.push(b'B');
    p.0.extend_from_slice(&(1u32 << 20).to_le_bytes());
    p.0.extend(std::iter::repeat_n(b'x', 1 << 20));
    p = p.op(b"q\x000](");
    for _ in 0..100_000 {
        p = p.op(b"h\x01h\x00\x85R");
    }
    let err = unpickle(&p.op(b"e").stop(), Options::default()).unwrap_err();
    assert!(
        matches!(&err, PickleError::TooComplex(m) if m.contains("MiB")),
        "{err}"
    );
}

#[test]
fn overlapping_views_are_bounded() {
    let data = [0u8; 4];
    // A stride-0 view of 255 x 255 x 255 x 2 elements over a 1-element storage: 132 MB from
    // 4 bytes.
    let pkl = tensor_pickle("FloatStorage", 1, 0, &[255, 255, 255, 2], &[0, 0, 0, 0]);
    let msg = open_crafted(&pkl, &[("0", &data)], b"little")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("overlapping"), "{msg}");
    // A small expanded view (what `x.expand(200, 200)` saves) is read, as torch reads it.
    let pkl = tensor_pickle("FloatStorage", 1, 0, &[200, 200], &[0, 0]);
    let ckpt = open_crafted(&pkl, &[("0", &data)], b"little").unwrap();
    assert_eq!(ckpt.state_dict().unwrap()[0].data.as_bytes().len(), 160_000);
}
