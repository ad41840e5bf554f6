//! The op set. Each op lives in one file (params, shape checks, variant choice, dispatch
//! size, CPU f64 reference) with one shader of the same name.
use crate::device::Caps;
use crate::graph::DType;
use crate::kernels::KernelKey;
use serde::{Deserialize, Serialize};

pub mod attention;
pub mod channel_scale;
pub mod depthwise_conv;
pub mod embed_tokens;
pub mod eos_pool;
pub mod expert_matmul;
pub mod im2col;
pub mod layernorm;
pub mod matmul;
pub mod moe_combine;
pub mod moe_dispatch;
pub mod moe_gate;
pub mod moe_route;
pub mod owl_class_logits;
pub mod patchify;
pub mod patch_merge;
pub mod pool;
pub mod softmax;
pub mod to_texture;
pub mod token_embed;
pub mod unary;
pub mod window_attention;

pub use depthwise_conv::ConvGeometry;
pub use moe_route::Routing;
pub use window_attention::WindowLayout;

/// Elementwise activation; the numeric codes are the ones `apply_act` in act.wgsl reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    None = 0,
    Gelu = 1,
    GeluTanh = 2,
    QuickGelu = 3,
    Tanh = 4,
    Relu = 5,
    Silu = 6,
    Sigmoid = 7,
}

impl Activation {
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Float64 reference.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Activation::None => x,
            Activation::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            Activation::GeluTanh => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
            }
            Activation::QuickGelu => x / (1.0 + (-1.702 * x).exp()),
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.max(0.0),
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }
}

/// erf in float64 (Abramowitz-Stegun 7.1.26 is too coarse for a reference; this is the
/// series / continued-fraction pair, accurate to ~1e-15).
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let r = if z < 2.5 {
        // Maclaurin series
        let mut sum = z;
        let mut term = z;
        let z2 = z * z;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -z2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() <= 1e-17 * sum.abs() || n > 200.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc continued fraction (Lentz)
        let z2 = z * z;
        let mut f = z;
        let mut c = z;
        let mut d = 0.0;
        for k in 1..300 {
            let a = k as f64 / 2.0;
            d = z + a * d;
            d = 1.0 / d;
            c = z + a / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - (-z2).exp() / (f * std::f64::consts::PI.sqrt())
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

/// Which token range a pooling op averages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// Select one token (e.g. the class token at 0).
    Token(usize),
    /// Mean over tokens from this index to the end (skipping prefix tokens).
    MeanFrom(usize),
}

/// One node's operation. Inputs are listed per variant; optional inputs follow the flags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// inputs: a [.., K], w [K, N], bias [N] if `bias`, residual [.., N] if `residual`.
    MatMul { act: Activation, bias: bool, residual: bool },
    /// inputs: x [.., D], gamma [D], beta [D].
    LayerNorm { eps: f32 },
    /// inputs: x [.., D].
    Softmax,
    /// inputs: qkv [B, N, 3*heads*head_dim], key mask [B, N] (1 keep, 0 padding) if
    /// `key_mask` -> [B, N, heads*head_dim]; `causal` keeps keys j <= i.
    Attention {
        heads: usize,
        scale: f32,
        #[serde(default)]
        causal: bool,
        #[serde(default)]
        key_mask: bool,
    },
    /// inputs: image [B, C, H, W] -> [B, (H/P)*(W/P), C*P*P]; with `pad` the grid rounds
    /// up and the missing pixels are zeros.
    Patchify {
        patch: usize,
        #[serde(default)]
        pad: bool,
    },
    /// inputs: patches [B, Np, D], prefix [prefix, D] if prefix > 0, pos [T - pos_start, D] if `pos`.
    TokenEmbed { prefix: usize, pos: bool, pos_start: usize },
    /// inputs: x [B, T, D] -> [B, D].
    Pool { kind: PoolKind },
    /// inputs: x (any shape).
    Unary { act: Activation },
    /// inputs: qkv [B, H*W, 3*C] of the unpadded map, relative-position bias
    /// [heads, N, N] (N = window area), qkv bias [3*C] if `pad_bias` (the key/value of
    /// padding positions) -> [B, H*W, C].
    WindowAttention { heads: usize, layout: WindowLayout, pad_bias: bool, scale: f32 },
    /// inputs: x [B, H*W, C] with `map` = [H, W] -> [B, ceil(H/2)*ceil(W/2), 4*C].
    PatchMerge { map: [usize; 2] },
    /// inputs: x [B, H*W, C], weight [k*k, C], bias [C] -> [B, Ho*Wo, C].
    DepthwiseConv { geometry: ConvGeometry, act: Activation },
    /// inputs: x [B, H*W, C] -> [B, Ho*Wo, C]: mean over each k x k window, padding
    /// counted as zeros.
    AvgPool { geometry: ConvGeometry },
    /// inputs: image [B, C, H, W] (`channels_first`) or map [B, H*W, C] ->
    /// [B, Ho*Wo, k*k*C], the rows of a k x k convolution as a matmul.
    Im2col { geometry: ConvGeometry, channels_first: bool },
    /// inputs: x [B, T, C], s [B, C] -> x[:, skip:] * act(s) (squeeze-excitation's gate;
    /// OWL-ViT's patch tokens times the class token).
    ChannelScale {
        act: Activation,
        #[serde(default)]
        skip: usize,
    },
    /// inputs: x -> the same values with `shape`.
    Reshape { shape: Vec<usize> },
    /// inputs: ids [N, L] (as f32), table [V, D], positions [>= L, D] -> [N, L, D].
    EmbedTokens,
    /// inputs: x [N, L, D], ids [N, L] -> [N, D] at each sequence's largest id (EOS).
    EosPool,
    /// inputs: image class embeds [B, P, D], shift/scale [B, P, 2], text embeds [B*Q, D],
    /// ids [B*Q, L] -> logits [B, P, Q].
    OwlClassLogits,
    /// inputs: tokens [.., D] (token routing) or mean tokens [B, D] (image routing), router
    /// weights [D, E] -> gate table [T, K, 3] (dispatch row: -1 for token routing, final
    /// for image routing; gate; expert).
    MoeGate { experts: usize, k: usize, routing: Routing },
    /// inputs: gate table [T, K, 3] -> routing table [T, K, 3] with each choice's dispatch
    /// row under capacity (or -1 when dropped). Token routing only.
    MoeRoute { routing: Routing },
    /// inputs: x [.., D] (T rows), routing table [T, K, 3] -> [E, rows, D].
    MoeDispatch { experts: usize, routing: Routing },
    /// inputs: a [E, R, K], w [E, K, N], bias [E, N] if `bias` -> [E, R, N].
    ExpertMatMul { act: Activation, bias: bool },
    /// inputs: y [E, rows, D], routing table [T, K, 3], residual [.., D] -> residual's shape.
    MoeCombine,
}

/// What a kernel needs to know about the adapter and the node's inputs.
#[derive(Clone, Debug, Default)]
pub struct PlanCtx {
    pub caps: Caps,
    pub input_dtypes: Vec<DType>,
    /// Force a named variant (op tests exercise every variant on every adapter).
    pub variant: Option<&'static str>,
    /// Input 1 (a matmul weight) also exists as an rgba32float texture.
    pub w_texture: bool,
    /// The adapter's max_texture_dimension_2d.
    pub max_texture_dim: u32,
}

/// A node's binding slot: one of its inputs, or its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    Input(usize),
    /// An input read as an rgba32float texture (4 consecutive row values per texel): a
    /// weight's texture made at upload, or an activation copied into one before the node.
    InputTexture(usize),
    Output,
}

/// A ready-to-dispatch kernel: pipeline key, uniform bytes, bindings, workgroup count.
#[derive(Clone, Debug)]
pub struct KernelPlan {
    pub key: KernelKey,
    pub params: Vec<u8>,
    pub bindings: Vec<(u32, Arg)>,
    pub workgroups: u64,
    /// Set by ops whose work splits into independent ranges of rows.
    pub chunks: Option<Chunking>,
}

/// Params and workgroup count for rows [start, start + len) of a chunked node.
pub type ChunkPlan = std::sync::Arc<dyn Fn(usize, usize) -> Result<(Vec<u8>, u64), String> + Send + Sync>;

/// How a node's work splits into independent ranges of rows, so that a binding larger than
/// the adapter's max_storage_buffer_binding_size (WebGPU's default: 128 MiB) is bound one
/// range at a time: the executor dispatches the node once per range, binding each
/// row-aligned buffer at that range's offset; the other bindings are bound whole.
#[derive(Clone)]
pub struct Chunking {
    pub rows: usize,
    /// (binding slot, bytes per row) of the row-aligned bindings.
    pub row_bytes: Vec<(u32, u64)>,
    pub plan: ChunkPlan,
}

impl std::fmt::Debug for Chunking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chunking {{ rows: {}, row_bytes: {:?} }}", self.rows, self.row_bytes)
    }
}

/// A `#[repr(C)]` uniform struct mirrored in WGSL; the layout test compares both.
pub trait UniformLayout: bytemuck::Pod {
    const WGSL_NAME: &'static str;
    const SHADER: &'static str;
    fn fields() -> Vec<(&'static str, usize)>;
}

macro_rules! uniform {
    ($shader:literal, $name:ident { $($f:ident : $t:ty),* $(,)? }) => {
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name { $(pub $f: $t),* }
        impl crate::ops::UniformLayout for $name {
            const WGSL_NAME: &'static str = stringify!($name);
            const SHADER: &'static str = $shader;
            fn fields() -> Vec<(&'static str, usize)> {
                vec![$((stringify!($f), std::mem::offset_of!($name, $f))),*]
            }
        }
    };
}
pub(crate) use uniform;

/// (shader, WGSL struct name, Rust size, Rust field offsets) of every uniform struct.
pub fn uniform_layouts() -> Vec<(&'static str, &'static str, usize, Vec<(&'static str, usize)>)> {
    fn one<T: UniformLayout>() -> (&'static str, &'static str, usize, Vec<(&'static str, usize)>) {
        (T::SHADER, T::WGSL_NAME, std::mem::size_of::<T>(), T::fields())
    }
    vec![
        one::<matmul::MatmulParams>(),
        one::<layernorm::LayerNormParams>(),
        one::<softmax::SoftmaxParams>(),
        one::<attention::AttentionParams>(),
        one::<patchify::PatchifyParams>(),
        one::<token_embed::TokenEmbedParams>(),
        one::<pool::PoolParams>(),
        one::<unary::UnaryParams>(),
        one::<window_attention::WindowAttentionParams>(),
        one::<patch_merge::PatchMergeParams>(),
        one::<depthwise_conv::DepthwiseConvParams>(),
        one::<im2col::Im2colParams>(),
        one::<channel_scale::ChannelScaleParams>(),
        one::<embed_tokens::EmbedTokensParams>(),
        one::<eos_pool::EosPoolParams>(),
        one::<owl_class_logits::OwlClassLogitsParams>(),
        one::<to_texture::ToTextureParams>(),
        one::<moe_gate::MoeGateParams>(),
        one::<moe_route::MoeRouteParams>(),
        one::<moe_dispatch::MoeDispatchParams>(),
        one::<expert_matmul::ExpertMatmulParams>(),
        one::<moe_combine::MoeCombineParams>(),
    ]
}

/// Every (shader, defines, entry) variant any plan can produce, for the naga test.
pub fn all_variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    v.extend(matmul::variants());
    v.extend(attention::variants());
    v.extend(layernorm::variants());
    v.extend(softmax::variants());
    v.extend(patchify::variants());
    v.extend(token_embed::variants());
    v.extend(pool::variants());
    v.extend(unary::variants());
    v.extend(window_attention::variants());
    v.extend(patch_merge::variants());
    v.extend(depthwise_conv::variants());
    v.extend(im2col::variants());
    v.extend(channel_scale::variants());
    v.extend(embed_tokens::variants());
    v.extend(eos_pool::variants());
    v.extend(owl_class_logits::variants());
    v.extend(to_texture::variants());
    v.extend(moe_gate::variants());
    v.extend(moe_route::variants());
    v.extend(moe_dispatch::variants());
    v.extend(expert_matmul::variants());
    v.extend(moe_combine::variants());
    v
}

pub(crate) fn u32_of(x: usize, what: &str) -> Result<u32, String> {
    u32::try_from(x).map_err(|_| format!("{what} = {x} does not fit in u32"))
}

fn expect_inputs(shapes: &[&[usize]], n: usize) -> Result<(), String> {
    if shapes.len() != n {
        return Err(format!("expected {n} inputs, got {}", shapes.len()));
    }
    Ok(())
}

impl Op {
    /// Short name used in profiles and labels.
    pub fn name(&self) -> &'static str {
        match self {
            Op::MatMul { .. } => "matmul",
            Op::LayerNorm { .. } => "layernorm",
            Op::Softmax => "softmax",
            Op::Attention { .. } => "attention",
            Op::Patchify { .. } => "patchify",
            Op::TokenEmbed { .. } => "token_embed",
            Op::Pool { .. } => "pool",
            Op::Unary { .. } => "unary",
            Op::WindowAttention { .. } => "window_attention",
            Op::PatchMerge { .. } => "patch_merge",
            Op::DepthwiseConv { .. } => "depthwise_conv",
            Op::AvgPool { .. } => "avg_pool",
            Op::Im2col { .. } => "im2col",
            Op::ChannelScale { .. } => "channel_scale",
            Op::Reshape { .. } => "reshape",
            Op::EmbedTokens => "embed_tokens",
            Op::EosPool => "eos_pool",
            Op::OwlClassLogits => "owl_class_logits",
            Op::MoeGate { .. } => "moe_gate",
            Op::MoeRoute { .. } => "moe_route",
            Op::MoeDispatch { .. } => "moe_dispatch",
            Op::ExpertMatMul { .. } => "expert_matmul",
            Op::MoeCombine => "moe_combine",
        }
    }

    /// Output shape from input shapes, or what is wrong with them.
    pub fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        match self {
            Op::MatMul { bias, residual, .. } => {
                expect_inputs(s, 2 + *bias as usize + *residual as usize)?;
                matmul::infer(s[0], s[1], bias.then(|| s[2]), residual.then(|| s[s.len() - 1]))
            }
            Op::LayerNorm { .. } => {
                expect_inputs(s, 3)?;
                layernorm::infer(s[0], s[1], s[2])
            }
            Op::Softmax => {
                expect_inputs(s, 1)?;
                softmax::infer(s[0])
            }
            Op::Attention { heads, key_mask, .. } => {
                expect_inputs(s, 1 + *key_mask as usize)?;
                if *key_mask && s[0].len() == 3 && s[1] != &s[0][..2] {
                    return Err(format!("key mask must be [B, N] = {:?}, got {:?}", &s[0][..2], s[1]));
                }
                attention::infer(s[0], *heads)
            }
            Op::Patchify { patch, pad } => {
                expect_inputs(s, 1)?;
                patchify::infer(s[0], *patch, *pad)
            }
            Op::TokenEmbed { prefix, pos, pos_start } => {
                expect_inputs(s, 1 + (*prefix > 0) as usize + *pos as usize)?;
                token_embed::infer(s, *prefix, *pos, *pos_start)
            }
            Op::Pool { kind } => {
                expect_inputs(s, 1)?;
                pool::infer(s[0], *kind)
            }
            Op::Unary { .. } => {
                expect_inputs(s, 1)?;
                Ok(s[0].to_vec())
            }
            Op::WindowAttention { heads, layout, pad_bias, .. } => {
                expect_inputs(s, 2 + *pad_bias as usize)?;
                window_attention::infer(s, *heads, layout, *pad_bias)
            }
            Op::PatchMerge { map } => {
                expect_inputs(s, 1)?;
                patch_merge::infer(s[0], *map)
            }
            Op::DepthwiseConv { geometry, .. } => {
                expect_inputs(s, 3)?;
                depthwise_conv::infer(s, geometry)
            }
            Op::AvgPool { geometry } => {
                expect_inputs(s, 1)?;
                depthwise_conv::infer(s, geometry)
            }
            Op::Im2col { geometry, channels_first } => {
                expect_inputs(s, 1)?;
                im2col::infer(s[0], geometry, *channels_first)
            }
            Op::ChannelScale { skip, .. } => {
                expect_inputs(s, 2)?;
                channel_scale::infer(s[0], s[1], *skip)
            }
            Op::Reshape { shape } => {
                expect_inputs(s, 1)?;
                if shape.iter().product::<usize>() != s[0].iter().product::<usize>() {
                    return Err(format!("cannot reshape {:?} to {shape:?}", s[0]));
                }
                Ok(shape.clone())
            }
            Op::EmbedTokens => {
                expect_inputs(s, 3)?;
                embed_tokens::infer(s)
            }
            Op::EosPool => {
                expect_inputs(s, 2)?;
                eos_pool::infer(s[0], s[1])
            }
            Op::OwlClassLogits => {
                expect_inputs(s, 4)?;
                owl_class_logits::infer(s)
            }
            Op::MoeGate { experts, k, routing } => {
                expect_inputs(s, 2)?;
                moe_gate::infer(s[0], s[1], *experts, *k, routing)
            }
            Op::MoeRoute { routing } => {
                expect_inputs(s, 1)?;
                moe_route::infer(s[0], routing)
            }
            Op::MoeDispatch { experts, routing } => {
                expect_inputs(s, 2)?;
                moe_dispatch::infer(s[0], s[1], *experts, routing)
            }
            Op::ExpertMatMul { bias, .. } => {
                expect_inputs(s, 2 + *bias as usize)?;
                expert_matmul::infer(s, *bias)
            }
            Op::MoeCombine => {
                expect_inputs(s, 3)?;
                moe_combine::infer(s[0], s[1], s[2])
            }
        }
    }

    /// The kernel for this node on this adapter (shapes were checked by `infer`).
    pub fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &PlanCtx) -> Result<KernelPlan, String> {
        match self {
            Op::MatMul { act, bias, residual } => matmul::plan(s, *act, *bias, *residual, ctx),
            Op::LayerNorm { eps } => layernorm::plan(s[0], *eps),
            Op::Softmax => softmax::plan(s[0]),
            Op::Attention { heads, scale, causal, key_mask } => attention::plan(s[0], *heads, *scale, *causal, *key_mask, ctx),
            Op::Patchify { patch, pad } => patchify::plan(s[0], out, *patch, *pad),
            Op::TokenEmbed { prefix, pos, pos_start } => token_embed::plan(s, out, *prefix, *pos, *pos_start),
            Op::Pool { kind } => pool::plan(s[0], *kind),
            Op::Unary { act } => unary::plan(out, *act),
            Op::WindowAttention { heads, layout, pad_bias, scale } => window_attention::plan(s, *heads, layout, *pad_bias, *scale, ctx),
            Op::PatchMerge { map } => patch_merge::plan(s[0], out, *map),
            Op::DepthwiseConv { geometry, act } => depthwise_conv::plan(s, out, geometry, *act),
            Op::AvgPool { geometry } => depthwise_conv::plan_avg_pool(s, out, geometry),
            Op::Im2col { geometry, channels_first } => im2col::plan(s[0], out, geometry, *channels_first),
            Op::ChannelScale { act, skip } => channel_scale::plan(out, *act, *skip),
            Op::Reshape { .. } => unary::plan(out, Activation::None),
            Op::EmbedTokens => embed_tokens::plan(s, out),
            Op::EosPool => eos_pool::plan(s[0]),
            Op::OwlClassLogits => owl_class_logits::plan(s, out),
            Op::MoeGate { k, routing, .. } => moe_gate::plan(s[0], s[1], *k, routing),
            Op::MoeRoute { routing } => moe_route::plan(s[0], routing),
            Op::MoeDispatch { routing, .. } => moe_dispatch::plan(s[0], s[1], out, routing),
            Op::ExpertMatMul { act, bias } => expert_matmul::plan(s, *act, *bias, ctx),
            Op::MoeCombine => moe_combine::plan(s[1], out),
        }
    }

    /// Float64 CPU reference.
    pub fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        match self {
            Op::MatMul { act, bias, residual } => {
                matmul::reference(x, s, *act, bias.then(|| x[2]), residual.then(|| x[x.len() - 1]))
            }
            Op::LayerNorm { eps } => layernorm::reference(x[0], x[1], x[2], s[0], *eps),
            Op::Softmax => softmax::reference(x[0], s[0]),
            Op::Attention { heads, scale, causal, key_mask } => {
                attention::reference(x[0], s[0], *heads, *scale, *causal, key_mask.then(|| x[1]))
            }
            Op::Patchify { patch, pad } => patchify::reference(x[0], s[0], out, *patch, *pad),
            Op::TokenEmbed { prefix, pos, pos_start } => token_embed::reference(x, s, out, *prefix, *pos, *pos_start),
            Op::Pool { kind } => pool::reference(x[0], s[0], *kind),
            Op::Unary { act } => x[0].iter().map(|&v| act.apply(v)).collect(),
            Op::WindowAttention { heads, layout, scale, .. } => window_attention::reference(x, s[0], *heads, layout, *scale),
            Op::PatchMerge { map } => patch_merge::reference(x[0], s[0], *map),
            Op::DepthwiseConv { geometry, act } => depthwise_conv::reference(x, s[0], geometry, *act),
            Op::AvgPool { geometry } => depthwise_conv::reference_avg_pool(x[0], s[0], geometry),
            Op::Im2col { geometry, channels_first } => im2col::reference(x[0], s[0], geometry, *channels_first),
            Op::ChannelScale { act, skip } => channel_scale::reference(x[0], x[1], s[0], *act, *skip),
            Op::Reshape { .. } => x[0].to_vec(),
            Op::EmbedTokens => embed_tokens::reference(x, s),
            Op::EosPool => eos_pool::reference(x[0], x[1], s[0]),
            Op::OwlClassLogits => owl_class_logits::reference(x, s, out),
            Op::MoeGate { k, routing, .. } => moe_gate::reference(x[0], x[1], s[0], *k, routing),
            Op::MoeRoute { routing } => moe_route::reference(x[0], s[0], routing),
            Op::MoeDispatch { .. } => moe_dispatch::reference(x[0], x[1], s[0], out),
            Op::ExpertMatMul { act, bias } => expert_matmul::reference(x, s, *act, *bias),
            Op::MoeCombine => moe_combine::reference(x[0], x[1], x[2], s[1][1]),
        }
    }

    /// Floating-point operations (multiply-add = 2) per execution, for GFLOP/s reports.
    /// Saturates at u64::MAX: a config's sizes may be absurd (a graph of 2^40 tokens
    /// builds, whose attention is 2^82 FLOPs) and a report figure must not overflow.
    pub fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let numel = |x: &[usize]| mul(&x.iter().map(|&v| v as u64).collect::<Vec<_>>());
        match self {
            Op::MatMul { .. } => {
                let k = *s[0].last().unwrap_or(&0) as u64;
                mul(&[2, k, numel(out)])
            }
            Op::Attention { .. } => {
                let (b, n, d3) = (s[0][0] as u64, s[0][1] as u64, s[0][2] as u64);
                // QK^T and PV: 2 * (2 * n * n * d) per batch, d = d3 / 3.
                mul(&[4, b, n, n, d3 / 3])
            }
            Op::WindowAttention { layout, .. } => {
                // Every position of the padded map attends to its window's N keys.
                let (b, d) = (s[0][0] as u64, s[0][2] as u64 / 3);
                let padded = |i: usize| mul(&[layout.map[i].div_ceil(layout.window[i].max(1)) as u64, layout.window[i] as u64]);
                mul(&[4, b, padded(0), padded(1), layout.window[0] as u64, layout.window[1] as u64, d])
            }
            Op::MoeGate { .. } => moe_gate::flops(s[0], s[1]),
            Op::ExpertMatMul { .. } => mul(&[2, s[0][2] as u64, numel(out)]),
            Op::DepthwiseConv { geometry, .. } => mul(&[2, geometry.kernel as u64, geometry.kernel as u64, numel(out)]),
            Op::AvgPool { geometry } => mul(&[geometry.kernel as u64, geometry.kernel as u64, numel(out)]),
            _ => 0,
        }
    }
}

/// The product, saturating at u64::MAX (for FLOP counts).
pub(crate) fn mul(factors: &[u64]) -> u64 {
    factors.iter().fold(1u64, |a, &b| a.saturating_mul(b))
}
