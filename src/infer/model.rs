//! The forward pass: one pre-norm decoder template driven by [`ModelConfig`], batched over a
//! chunk of tokens, with a KV cache for generation.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::InferError;
use super::config::{FfnKind, ModelConfig, NormKind};
use super::kernel;
use super::ops;
use super::weights::{Weight, matmul, matmul_ggml, sgemm};

/// A normalisation layer's parameters.
pub struct Norm {
    /// Scale.
    pub w: Vec<f32>,
    /// Shift (LayerNorm).
    pub b: Option<Vec<f32>>,
}

/// A linear layer `y = x·Wᵀ + b`.
pub struct Linear {
    /// Weight `[out, in]`.
    pub w: Weight,
    /// Optional bias `[out]`.
    pub b: Option<Vec<f32>>,
}

/// Query/key/value projections.
pub enum Qkv {
    /// One `[q + 2·kv, d]` matrix (GPT-2 `attn_qkv`).
    Fused(Linear),
    /// Separate matrices.
    Split {
        /// Query.
        q: Linear,
        /// Key.
        k: Linear,
        /// Value.
        v: Linear,
    },
}

/// One transformer block.
pub struct Layer {
    pub(crate) attn_norm: Norm,
    pub(crate) qkv: Qkv,
    pub(crate) q_norm: Option<Vec<f32>>,
    pub(crate) k_norm: Option<Vec<f32>>,
    pub(crate) wo: Linear,
    pub(crate) ffn_norm: Norm,
    /// Gemma 2/3: RMS norm of the attention output before the residual add.
    pub(crate) attn_post_norm: Option<Norm>,
    /// Gemma 2/3: RMS norm of the FFN output before the residual add.
    pub(crate) ffn_post_norm: Option<Norm>,
    pub(crate) up: Linear,
    pub(crate) gate: Option<Linear>,
    pub(crate) down: Linear,
}

/// Every weight of a model.
pub struct Weights {
    pub(crate) tok_embd: Weight,
    pub(crate) pos_embd: Option<Weight>,
    pub(crate) layers: Vec<Layer>,
    pub(crate) output_norm: Norm,
    pub(crate) output: Weight,
}

/// Numerical options of the forward pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Numerics {
    /// Round keys and values to f16 in the cache, like llama.cpp's default `--cache-type-k/v
    /// f16`.
    pub kv_f16: bool,
    /// GELU through ggml's f16 lookup table instead of the exact tanh formula.
    pub ggml_gelu: bool,
    /// Round matmul inputs like ggml's dot products do (f16 for F16 weights, Q8_0/Q8_K blocks
    /// for quantized ones); see [`super::weights::ggml_activation_roundtrip`].
    pub ggml_activations: bool,
}

impl Numerics {
    /// What llama.cpp's CPU backend does by default (for token-for-token comparisons).
    pub fn llama_cpp() -> Numerics {
        Numerics {
            kv_f16: true,
            ggml_gelu: true,
            ggml_activations: true,
        }
    }
}

/// Sees the input of every weight matmul (for importance matrices).
pub trait MatmulObserver {
    /// `x` holds `rows` rows of `weight.cols` activations that multiply `weight`.
    fn observe(&mut self, weight: &Weight, x: &[f32], rows: usize);
}

/// A loaded model, ready to run.
pub struct Model {
    /// Hyper-parameters.
    pub config: ModelConfig,
    weights: Weights,
    source: PathBuf,
}

impl Model {
    pub(crate) fn new(config: ModelConfig, weights: Weights, source: PathBuf) -> Model {
        Model {
            config,
            weights,
            source,
        }
    }

    /// Loads a GGUF file (tensors stay memory-mapped).
    pub fn load(path: impl AsRef<Path>) -> Result<Model, InferError> {
        super::load::from_gguf(path.as_ref())
    }

    /// Where the model was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Names and types of the weight matrices, in forward order.
    pub fn matrices(&self) -> Vec<&Weight> {
        let w = &self.weights;
        let mut v = Vec::new();
        for l in &w.layers {
            match &l.qkv {
                Qkv::Fused(x) => v.push(&x.w),
                Qkv::Split { q, k, v: vv } => v.extend([&q.w, &k.w, &vv.w]),
            }
            v.push(&l.wo.w);
            if let Some(g) = &l.gate {
                v.push(&g.w);
            }
            v.extend([&l.up.w, &l.down.w]);
        }
        v.push(&w.output);
        v
    }

    /// A new inference session with room for `n_ctx` tokens.
    pub fn session(&self, n_ctx: usize) -> Session<'_> {
        self.session_with(n_ctx, Numerics::default())
    }

    /// A new session with explicit numerics.
    pub fn session_with(&self, n_ctx: usize, numerics: Numerics) -> Session<'_> {
        keep_freed_buffers();
        let kvd = self.config.kv_dim();
        let n = self.config.n_layer;
        Session {
            model: self,
            n_ctx,
            n_past: 0,
            numerics,
            k: vec![vec![0.0; n_ctx * kvd]; n],
            v: vec![vec![0.0; n_ctx * kvd]; n],
        }
    }

    /// Logits of every position of `tokens` (one row of `n_vocab` per token), from a fresh
    /// context.
    pub fn logits(&self, tokens: &[u32]) -> Result<Vec<f32>, InferError> {
        let mut s = self.session(tokens.len());
        s.eval(tokens, 0)
    }
}

/// Asks glibc's allocator to keep freed buffers for reuse. A forward pass allocates and frees
/// the same multi-MB activation and logit buffers for every chunk; above glibc's mmap threshold
/// (at most 32 MiB) each one is a fresh mapping whose pages are faulted in and zeroed again,
/// which perf measured at ~11 % of an eval. Keeping them in the heap costs at most one pass's
/// working set, which the process holds anyway.
fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator parameters; it is called once, before
            // the session's buffers exist, and a refusal (return 0) just keeps the defaults.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}

/// A context: the KV cache of the tokens evaluated so far.
pub struct Session<'m> {
    model: &'m Model,
    n_ctx: usize,
    n_past: usize,
    numerics: Numerics,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: attention heads write disjoint column ranges of the output through this pointer.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    // A method, so closures capture the whole (Send) wrapper, not the raw pointer field.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

impl Session<'_> {
    /// Tokens in the cache.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Capacity in tokens.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Forgets every cached token.
    pub fn clear(&mut self) {
        self.n_past = 0;
    }

    /// Drops cached tokens from position `n` on.
    pub fn truncate(&mut self, n: usize) {
        self.n_past = self.n_past.min(n);
    }

    /// Runs `tokens` after the cached ones and returns the logits of the positions from
    /// `first_logit` (relative to `tokens`) to the end, `n_vocab` per row.
    pub fn eval(&mut self, tokens: &[u32], first_logit: usize) -> Result<Vec<f32>, InferError> {
        let mut logits = Vec::new();
        self.eval_into(tokens, first_logit, &mut logits, None)?;
        Ok(logits)
    }

    /// [`Session::eval_observed`] into a caller's buffer, which keeps its allocation from
    /// chunk to chunk (a chunk's logits are tens of MB).
    pub fn eval_into(
        &mut self,
        tokens: &[u32],
        first_logit: usize,
        logits: &mut Vec<f32>,
        obs: Option<&mut dyn MatmulObserver>,
    ) -> Result<(), InferError> {
        logits.clear();
        self.forward(tokens, first_logit, logits, obs)
    }

    /// [`Session::eval`], reporting every matmul input to `obs`.
    pub fn eval_observed(
        &mut self,
        tokens: &[u32],
        first_logit: usize,
        obs: Option<&mut dyn MatmulObserver>,
    ) -> Result<Vec<f32>, InferError> {
        let mut logits = Vec::new();
        self.eval_into(tokens, first_logit, &mut logits, obs)?;
        Ok(logits)
    }

    /// The forward pass; leaves `logits` empty when no position is asked for.
    fn forward(
        &mut self,
        tokens: &[u32],
        first_logit: usize,
        logits: &mut Vec<f32>,
        mut obs: Option<&mut dyn MatmulObserver>,
    ) -> Result<(), InferError> {
        let m = self.model;
        let c = &m.config;
        let w = &m.weights;
        let t = tokens.len();
        if t == 0 {
            return Ok(());
        }
        if self.n_past + t > self.n_ctx {
            return Err(InferError::Input(format!(
                "context full: {} cached + {t} new tokens exceed the context size {}",
                self.n_past, self.n_ctx
            )));
        }
        let pos0 = self.n_past;
        if let Some(pe) = &w.pos_embd
            && pos0 + t > pe.rows
        {
            return Err(InferError::Input(format!(
                "position {} is past the model's {} learned positions",
                pos0 + t - 1,
                pe.rows
            )));
        }
        let d = c.n_embd;
        let mut x = vec![0f32; t * d];
        for (i, &tok) in tokens.iter().enumerate() {
            if tok as usize >= c.n_vocab {
                return Err(InferError::Input(format!(
                    "token id {tok} is outside the vocabulary (size {})",
                    c.n_vocab
                )));
            }
            let row = &mut x[i * d..(i + 1) * d];
            w.tok_embd.dequant_rows(tok as usize, 1, row);
            if let Some(s) = c.extras.embd_scale {
                for a in row.iter_mut() {
                    *a *= s;
                }
            }
            if let Some(pe) = &w.pos_embd {
                let p = pe.row(pos0 + i);
                for (a, b) in row.iter_mut().zip(p) {
                    *a += b;
                }
            }
        }
        // LongRoPE picks its divisors by the context size, as llama.cpp does per context.
        let (factors, mscale) = match (&c.rope, &c.variant.long_rope) {
            (_, Some(lr)) if self.n_ctx > lr.n_ctx_orig => (Some(&lr.long[..]), lr.attn_factor),
            (_, Some(lr)) => (Some(&lr.short[..]), lr.attn_factor),
            (Some(r), None) => (r.factors.as_deref(), 1.0),
            (None, None) => (None, 1.0),
        };
        let ropes: Vec<ops::RopeTable> = match &c.rope {
            Some(r) => (0..t)
                .map(|i| {
                    let mut tab =
                        ops::rope_table(pos0 + i, r.n_rot, r.freq_base, r.freq_scale, factors);
                    if mscale != 1.0 {
                        tab.cos.iter_mut().for_each(|x| *x *= mscale);
                        tab.sin.iter_mut().for_each(|x| *x *= mscale);
                    }
                    tab
                })
                .collect(),
            None => Vec::new(),
        };
        let var = &c.variant;
        // Sliding-window layers may rotate with their own base and scale (Gemma 3).
        let swa_ropes: Vec<ops::RopeTable> = match (&c.rope, &c.extras.swa) {
            (Some(r), Some(s)) => (0..t)
                .map(|i| {
                    ops::rope_table(
                        pos0 + i,
                        r.n_rot,
                        s.freq_base,
                        s.freq_scale,
                        r.factors.as_deref(),
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        let (qd, kvd, hd) = (c.q_dim(), c.kv_dim(), c.head_dim);
        let act = self.numerics.ggml_activations;
        for (il, l) in w.layers.iter().enumerate() {
            let mut h = x.clone();
            // Post-norm blocks (OLMo 2) keep their norms in the attn/ffn_norm slots.
            if !var.post_norms {
                norm_rows(&mut h, d, &l.attn_norm, c.norm, c.norm_eps);
            }
            let (mut q, mut k, v) = match &l.qkv {
                Qkv::Fused(lin) => {
                    let y = linear(lin, &h, t, &mut obs, act);
                    let n = qd + 2 * kvd;
                    let mut q = Vec::with_capacity(t * qd);
                    let mut k = Vec::with_capacity(t * kvd);
                    let mut v = Vec::with_capacity(t * kvd);
                    for r in y.chunks_exact(n) {
                        if var.qkv_per_head {
                            // HF GPT-NeoX: (head, q|k|v, head_dim) rows.
                            for part in r.chunks_exact(3 * hd) {
                                q.extend_from_slice(&part[..hd]);
                                k.extend_from_slice(&part[hd..2 * hd]);
                                v.extend_from_slice(&part[2 * hd..]);
                            }
                        } else {
                            q.extend_from_slice(&r[..qd]);
                            k.extend_from_slice(&r[qd..qd + kvd]);
                            v.extend_from_slice(&r[qd + kvd..]);
                        }
                    }
                    (q, k, v)
                }
                Qkv::Split { q, k, v } => (
                    linear(q, &h, t, &mut obs, act),
                    linear(k, &h, t, &mut obs, act),
                    linear(v, &h, t, &mut obs, act),
                ),
            };
            if let (Some(qn), Some(kn)) = (&l.q_norm, &l.k_norm) {
                // Per head (Qwen3) or over the whole projection (OLMo 2).
                let (qw, kw) = if var.qk_norm_full {
                    (qd, kvd)
                } else {
                    (hd, hd)
                };
                for head in q.chunks_exact_mut(qw) {
                    ops::rms_norm(head, qn, None, c.norm_eps);
                }
                for head in k.chunks_exact_mut(kw) {
                    ops::rms_norm(head, kn, None, c.norm_eps);
                }
            }
            let window = c
                .extras
                .swa
                .as_ref()
                .filter(|s| s.applies_to(il))
                .map(|s| s.window);
            let ropes = if window.is_some() && !swa_ropes.is_empty() {
                &swa_ropes
            } else {
                &ropes
            };
            let skip_rope = var.no_rope_interval > 0 && (il + 1) % var.no_rope_interval == 0;
            if let Some(r) = &c.rope
                && !skip_rope
            {
                q.par_chunks_mut(qd)
                    .zip(k.par_chunks_mut(kvd))
                    .zip(ropes.par_iter())
                    .for_each(|((qi, ki), rope)| {
                        for head in qi.chunks_exact_mut(hd).chain(ki.chunks_exact_mut(hd)) {
                            ops::rope_apply(&mut head[..r.n_rot], rope, r.mode);
                        }
                    });
            }
            let kc = &mut self.k[il][pos0 * kvd..(pos0 + t) * kvd];
            kc.copy_from_slice(&k);
            let vc = &mut self.v[il][pos0 * kvd..(pos0 + t) * kvd];
            vc.copy_from_slice(&v);
            if self.numerics.kv_f16 {
                kernel::round_to_f16(kc);
                kernel::round_to_f16(vc);
            }
            let att = attention(
                &q,
                &self.k[il][..(pos0 + t) * kvd],
                &self.v[il][..(pos0 + t) * kvd],
                t,
                pos0,
                c,
                window,
            );
            let mut o = linear(&l.wo, &att, t, &mut obs, act);
            if let Some(n) = &l.attn_post_norm {
                norm_rows(&mut o, d, n, c.norm, c.norm_eps);
            }
            if var.post_norms {
                norm_rows(&mut o, d, &l.attn_norm, c.norm, c.norm_eps);
            }
            // Parallel blocks (GPT-NeoX) feed the FFN the block input, not x + attention.
            let mut h = if var.parallel_residual {
                x.clone()
            } else {
                Vec::new()
            };
            for (a, b) in x.iter_mut().zip(&o) {
                *a += b;
            }
            if !var.parallel_residual {
                h = x.clone();
            }
            if !var.post_norms {
                norm_rows(&mut h, d, &l.ffn_norm, c.norm, c.norm_eps);
            }
            let mut up = linear(&l.up, &h, t, &mut obs, act);
            match (c.ffn, &l.gate) {
                (FfnKind::SiluGated, Some(g)) => {
                    let gate = linear(g, &h, t, &mut obs, act);
                    up.par_chunks_mut(c.n_ff)
                        .zip(gate.par_chunks(c.n_ff))
                        .for_each(|(u, g)| {
                            for (u, g) in u.iter_mut().zip(g) {
                                *u *= ops::silu(*g);
                            }
                        });
                }
                (FfnKind::SiluGated, None) => {
                    // Fused gate/up (Phi-3): each row is the gate half then the up half.
                    let nf = c.n_ff;
                    up = up
                        .chunks_exact(2 * nf)
                        .flat_map(|r| (0..nf).map(move |j| ops::silu(r[j]) * r[nf + j]))
                        .collect();
                }
                (FfnKind::GeluGated, Some(g)) => {
                    let gate = linear(g, &h, t, &mut obs, act);
                    let f = if self.numerics.ggml_gelu {
                        ops::gelu_ggml
                    } else {
                        ops::gelu_tanh
                    };
                    for (u, g) in up.iter_mut().zip(&gate) {
                        *u *= f(*g);
                    }
                }
                _ => {
                    let f = if self.numerics.ggml_gelu {
                        ops::gelu_ggml
                    } else {
                        ops::gelu_tanh
                    };
                    up.par_chunks_mut(c.n_ff).for_each(|u| {
                        for u in u.iter_mut() {
                            *u = f(*u);
                        }
                    });
                }
            }
            let mut down = linear(&l.down, &up, t, &mut obs, act);
            if let Some(n) = &l.ffn_post_norm {
                norm_rows(&mut down, d, n, c.norm, c.norm_eps);
            }
            if var.post_norms {
                norm_rows(&mut down, d, &l.ffn_norm, c.norm, c.norm_eps);
            }
            for (a, b) in x.iter_mut().zip(&down) {
                *a += b;
            }
        }
        self.n_past += t;
        if first_logit >= t {
            return Ok(());
        }
        let mut hx = x[first_logit * d..].to_vec();
        let n_out = t - first_logit;
        norm_rows(&mut hx, d, &w.output_norm, c.norm, c.norm_eps);
        logits.resize(n_out * c.n_vocab, 0.0);
        if let Some(o) = obs {
            o.observe(&w.output, &hx, n_out);
        }
        if act {
            matmul_ggml(&hx, n_out, &w.output, logits);
        } else {
            matmul(&hx, n_out, &w.output, logits);
        }
        if let Some(cap) = c.extras.final_softcap {
            for l in logits.iter_mut() {
                *l = cap * (*l / cap).tanh();
            }
        }
        Ok(())
    }
}

fn norm_rows(x: &mut [f32], d: usize, n: &Norm, kind: NormKind, eps: f32) {
    x.par_chunks_mut(d).for_each(|row| match kind {
        NormKind::LayerNorm => ops::layer_norm(row, &n.w, n.b.as_deref(), eps),
        NormKind::RmsNorm => ops::rms_norm(row, &n.w, n.b.as_deref(), eps),
    });
}

fn linear(
    l: &Linear,
    x: &[f32],
    t: usize,
    obs: &mut Option<&mut dyn MatmulObserver>,
    ggml_activations: bool,
) -> Vec<f32> {
    if let Some(o) = obs.as_deref_mut() {
        o.observe(&l.w, x, t);
    }
    let n = l.w.rows;
    let mut y = vec![0f32; t * n];
    if ggml_activations {
        matmul_ggml(x, t, &l.w, &mut y);
    } else {
        matmul(x, t, &l.w, &mut y);
    }
    if let Some(b) = &l.b {
        for row in y.chunks_exact_mut(n) {
            for (a, b) in row.iter_mut().zip(b) {
                *a += b;
            }
        }
    }
    y
}

/// Query rows per attention block: each block only multiplies the keys it can see, so the
/// masked upper triangle is (mostly) never computed.
const ATTN_BLOCK: usize = 64;

/// Queries per kernel call in [`attention_dot`].
const ATTN_GROUP: usize = 4;

/// Causal multi-head attention of `t` new queries over `pos0 + t` cached keys/values.
/// With a `window`, a query at position p sees only keys at positions > p - window.
fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    pos0: usize,
    c: &ModelConfig,
    window: Option<usize>,
) -> Vec<f32> {
    if kernel::available() {
        attention_dot(q, k, v, t, pos0, c, window)
    } else {
        attention_gemm(q, k, v, t, pos0, c, window)
    }
}

/// [`attention`] on the dot-product kernel: scores of 4 queries at a time against only the
/// keys the last of them can see, and `P·V` as dot products with a transposed copy of V.
/// The group size is part of the numerics (each `P·V` product runs over the keys the group's
/// last query sees, so it sets where the kernel's 8-lane part ends and its scalar tail
/// begins): it is [`ATTN_GROUP`] whatever the kernel.
fn attention_dot(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    pos0: usize,
    c: &ModelConfig,
    window: Option<usize>,
) -> Vec<f32> {
    let softcap = c.extras.attn_softcap;
    let (qd, kvd, hd) = (c.q_dim(), c.kv_dim(), c.head_dim);
    let group = c.n_head / c.n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let n_kv = pos0 + t;
    // vt[(kvh·hd + d)·n_kv + j] = v[j·kvd + kvh·hd + d]: each output column a contiguous row.
    let mut vt = vec![0f32; kvd * n_kv];
    vt.par_chunks_mut(n_kv).enumerate().for_each(|(col, row)| {
        for (j, x) in row.iter_mut().enumerate() {
            *x = v[j * kvd + col];
        }
    });
    // Each KV head's keys and value columns, packed once for all its query heads and blocks.
    let packs: Vec<(kernel::Packed, kernel::Packed)> = (0..c.n_head_kv)
        .into_par_iter()
        .map(|kvh| {
            let (mut pk, mut pv) = (kernel::Packed::default(), kernel::Packed::default());
            pk.pack(kernel::Rows::F32(&k[kvh * hd..]), kvd, n_kv, hd);
            pv.pack(kernel::Rows::F32(&vt[kvh * hd * n_kv..]), n_kv, hd, n_kv);
            (pk, pv)
        })
        .collect();
    let mut out = vec![0f32; t * qd];
    let dst = SendPtr(out.as_mut_ptr());
    let blocks = t.div_ceil(ATTN_BLOCK);
    (0..c.n_head * blocks).into_par_iter().for_each_init(
        Vec::new,
        |scores: &mut Vec<f32>, task| {
            let (h, blk) = (task / blocks, task % blocks);
            let kvh = h / group;
            let i0 = blk * ATTN_BLOCK;
            let rows = ATTN_BLOCK.min(t - i0);
            // Keys visible to the last query of the block: the row stride of `scores`.
            let s = pos0 + i0 + rows;
            scores.resize(rows * s, 0.0);
            let mut i = 0;
            while i < rows {
                let g = ATTN_GROUP.min(rows - i);
                let vis_g = pos0 + i0 + i + g;
                // SAFETY: q rows i0+i.. (stride qd) from column h·hd, keys 0..vis_g (stride
                // kvd) from column kvh·hd, each hd long; scores rows i..i+g (stride s) hold
                // vis_g ≤ s values; `scores` is this task's own buffer.
                unsafe {
                    kernel::dot_tile_packed(
                        &q[(i0 + i) * qd + h * hd..],
                        qd,
                        g,
                        hd,
                        kernel::Rows::F32(&k[kvh * hd..]),
                        kvd,
                        vis_g,
                        &packs[kvh].0,
                        scores.as_mut_ptr().add(i * s),
                        s,
                    );
                }
                for r in i..i + g {
                    let vis = pos0 + i0 + r + 1;
                    let row = &mut scores[r * s..r * s + vis_g];
                    for x in &mut row[..vis] {
                        *x *= scale;
                    }
                    scores_to_probs(row, vis, softcap, window);
                }
                // SAFETY: probabilities rows i..i+g (stride s, vis_g long), V columns
                // kvh·hd.. as rows of vt (stride n_kv ≥ vis_g); output rows i0+i.. columns
                // h·hd..(h+1)·hd (stride qd), which no other task writes.
                unsafe {
                    kernel::dot_tile_packed(
                        &scores[i * s..],
                        s,
                        g,
                        vis_g,
                        kernel::Rows::F32(&vt[kvh * hd * n_kv..]),
                        n_kv,
                        hd,
                        &packs[kvh].1,
                        dst.ptr().add((i0 + i) * qd + h * hd),
                        qd,
                    );
                }
                i += g;
            }
        },
    );
    out
}

/// Turns one row of scaled attention scores into probabilities, the same way for both
/// attention paths: soft-capping, the causal mask (keys from `vis` on get probability 0) and
/// the sliding window (llama.cpp masks a key at p0 from a query at p1 when p1 - p0 >= n_swa).
fn scores_to_probs(row: &mut [f32], vis: usize, softcap: Option<f32>, window: Option<usize>) {
    let (seen, unseen) = row.split_at_mut(vis);
    if let Some(cap) = softcap {
        for x in seen.iter_mut() {
            *x = cap * (*x / cap).tanh();
        }
    }
    if let Some(wnd) = window {
        seen[..vis.saturating_sub(wnd)].fill(f32::NEG_INFINITY);
    }
    ops::softmax(seen);
    unseen.fill(0.0);
}

/// [`attention`] on the portable GEMM.
fn attention_gemm(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    pos0: usize,
    c: &ModelConfig,
    window: Option<usize>,
) -> Vec<f32> {
    let softcap = c.extras.attn_softcap;
    let (qd, kvd, hd) = (c.q_dim(), c.kv_dim(), c.head_dim);
    let group = c.n_head / c.n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; t * qd];
    let dst = SendPtr(out.as_mut_ptr());
    let blocks = t.div_ceil(ATTN_BLOCK);
    (0..c.n_head * blocks).into_par_iter().for_each(|task| {
        let (h, blk) = (task / blocks, task % blocks);
        let kvh = h / group;
        let i0 = blk * ATTN_BLOCK;
        let rows = ATTN_BLOCK.min(t - i0);
        // Keys visible to the last query of the block.
        let s = pos0 + i0 + rows;
        let mut scores = vec![0f32; rows * s];
        // SAFETY: q is t×qd, k and v are at least s×kvd; this task reads rows i0..i0+rows of
        // q's columns h·hd.. and keys/values 0..s of columns kvh·hd.., and writes rows
        // i0..i0+rows × columns h·hd..(h+1)·hd of `out`, which no other task writes.
        unsafe {
            sgemm(
                (rows, hd, s),
                scale,
                (q.as_ptr().add(i0 * qd + h * hd), qd as isize, 1),
                (k.as_ptr().add(kvh * hd), 1, kvd as isize),
                (scores.as_mut_ptr(), s as isize, 1),
            );
        }
        for (r, row) in scores.chunks_exact_mut(s).enumerate() {
            scores_to_probs(row, pos0 + i0 + r + 1, softcap, window);
        }
        // SAFETY: as above.
        unsafe {
            sgemm(
                (rows, s, hd),
                1.0,
                (scores.as_ptr(), s as isize, 1),
                (v.as_ptr().add(kvh * hd), kvd as isize, 1),
                (dst.ptr().add(i0 * qd + h * hd), qd as isize, 1),
            );
        }
    });
    out
}
