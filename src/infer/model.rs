//! The forward pass: one pre-norm decoder template driven by [`ModelConfig`], batched over a
//! chunk of tokens, with a KV cache for generation.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::InferError;
use super::config::{FfnKind, ModelConfig, NormKind};
use super::ops;
use super::weights::{Weight, ggml_activation_roundtrip, ggml_q8_1_correction, matmul, sgemm};

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
        self.eval_observed(tokens, first_logit, None)
    }

    /// [`Session::eval`], reporting every matmul input to `obs`.
    pub fn eval_observed(
        &mut self,
        tokens: &[u32],
        first_logit: usize,
        mut obs: Option<&mut dyn MatmulObserver>,
    ) -> Result<Vec<f32>, InferError> {
        let m = self.model;
        let c = &m.config;
        let w = &m.weights;
        let t = tokens.len();
        if t == 0 {
            return Ok(Vec::new());
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
            if let Some(pe) = &w.pos_embd {
                let p = pe.row(pos0 + i);
                for (a, b) in row.iter_mut().zip(p) {
                    *a += b;
                }
            }
        }
        let ropes: Vec<ops::RopeTable> = match &c.rope {
            Some(r) => (0..t)
                .map(|i| {
                    ops::rope_table(
                        pos0 + i,
                        r.n_rot,
                        r.freq_base,
                        r.freq_scale,
                        r.factors.as_deref(),
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        let (qd, kvd, hd) = (c.q_dim(), c.kv_dim(), c.head_dim);
        let act = self.numerics.ggml_activations;
        for (il, l) in w.layers.iter().enumerate() {
            let mut h = x.clone();
            norm_rows(&mut h, d, &l.attn_norm, c.norm, c.norm_eps);
            let (mut q, mut k, v) = match &l.qkv {
                Qkv::Fused(lin) => {
                    let y = linear(lin, &h, t, &mut obs, act);
                    let n = qd + 2 * kvd;
                    let mut q = Vec::with_capacity(t * qd);
                    let mut k = Vec::with_capacity(t * kvd);
                    let mut v = Vec::with_capacity(t * kvd);
                    for r in y.chunks_exact(n) {
                        q.extend_from_slice(&r[..qd]);
                        k.extend_from_slice(&r[qd..qd + kvd]);
                        v.extend_from_slice(&r[qd + kvd..]);
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
                for head in q.chunks_exact_mut(hd) {
                    ops::rms_norm(head, qn, None, c.norm_eps);
                }
                for head in k.chunks_exact_mut(hd) {
                    ops::rms_norm(head, kn, None, c.norm_eps);
                }
            }
            if let Some(r) = &c.rope {
                for i in 0..t {
                    for head in q[i * qd..(i + 1) * qd].chunks_exact_mut(hd) {
                        ops::rope_apply(&mut head[..r.n_rot], &ropes[i], r.mode);
                    }
                    for head in k[i * kvd..(i + 1) * kvd].chunks_exact_mut(hd) {
                        ops::rope_apply(&mut head[..r.n_rot], &ropes[i], r.mode);
                    }
                }
            }
            let kc = &mut self.k[il][pos0 * kvd..(pos0 + t) * kvd];
            kc.copy_from_slice(&k);
            let vc = &mut self.v[il][pos0 * kvd..(pos0 + t) * kvd];
            vc.copy_from_slice(&v);
            if self.numerics.kv_f16 {
                for a in kc.iter_mut().chain(vc.iter_mut()) {
                    *a = half::f16::from_f32(*a).to_f32();
                }
            }
            let att = attention(
                &q,
                &self.k[il][..(pos0 + t) * kvd],
                &self.v[il][..(pos0 + t) * kvd],
                t,
                pos0,
                c,
            );
            let o = linear(&l.wo, &att, t, &mut obs, act);
            for (a, b) in x.iter_mut().zip(&o) {
                *a += b;
            }
            let mut h = x.clone();
            norm_rows(&mut h, d, &l.ffn_norm, c.norm, c.norm_eps);
            let mut up = linear(&l.up, &h, t, &mut obs, act);
            match (c.ffn, &l.gate) {
                (FfnKind::SiluGated, Some(g)) => {
                    let gate = linear(g, &h, t, &mut obs, act);
                    for (u, g) in up.iter_mut().zip(&gate) {
                        *u *= ops::silu(*g);
                    }
                }
                _ => {
                    let f = if self.numerics.ggml_gelu {
                        ops::gelu_ggml
                    } else {
                        ops::gelu_tanh
                    };
                    for u in up.iter_mut() {
                        *u = f(*u);
                    }
                }
            }
            let down = linear(&l.down, &up, t, &mut obs, act);
            for (a, b) in x.iter_mut().zip(&down) {
                *a += b;
            }
        }
        self.n_past += t;
        if first_logit >= t {
            return Ok(Vec::new());
        }
        let mut hx = x[first_logit * d..].to_vec();
        let n_out = t - first_logit;
        norm_rows(&mut hx, d, &w.output_norm, c.norm, c.norm_eps);
        let mut logits = vec![0f32; n_out * c.n_vocab];
        if let Some(o) = obs {
            o.observe(&w.output, &hx, n_out);
        }
        if act {
            for r in hx.chunks_exact_mut(d) {
                ggml_activation_roundtrip(w.output.ty, r);
            }
        }
        matmul(&hx, n_out, &w.output, &mut logits);
        Ok(logits)
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
        let mut xr = x.to_vec();
        for r in xr.chunks_exact_mut(l.w.cols) {
            ggml_activation_roundtrip(l.w.ty, r);
        }
        matmul(&xr, t, &l.w, &mut y);
        ggml_q8_1_correction(&l.w, x, t, &mut y);
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

/// Causal multi-head attention of `t` new queries over `pos0 + t` cached keys/values.
fn attention(q: &[f32], k: &[f32], v: &[f32], t: usize, pos0: usize, c: &ModelConfig) -> Vec<f32> {
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
            for x in &mut row[pos0 + i0 + r + 1..] {
                *x = f32::NEG_INFINITY;
            }
            ops::softmax(row);
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
