//! The op set. Each op lives in one file (`OpDef`: params, shape checks, variant choice,
//! dispatch size, CPU f64 reference) with one shader of the same name, and is listed once
//! in `registry!` below, which derives the serialized `Op` enum, the shader-variant list,
//! the uniform-layout list and the op names the op-test table is checked against.
use crate::device::Caps;
use crate::graph::DType;
use crate::kernels::KernelKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use depthwise_conv::ConvGeometry;
pub use moe_route::Routing;
pub use window_attention::WindowGeometry;

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

/// What a kernel needs to know about the adapter and the node's inputs.
#[derive(Clone, Debug, Default)]
pub struct PlanCtx {
    pub caps: Caps,
    pub input_dtypes: Vec<DType>,
    /// Input 1 (a matmul weight) also exists as an rgba32float texture.
    pub w_texture: bool,
    /// The adapter's max_texture_dimension_2d.
    pub max_texture_dim: u32,
    /// The output is a texture (the lowering pass fused the consumer's to_texture here).
    pub out_texture: bool,
}

/// A node's binding slot: one of its inputs, or its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    Input(usize),
    /// An input read as an rgba32float texture (4 consecutive row values per texel): a
    /// weight's texture made at upload, or an activation copied into one before the node.
    InputTexture(usize),
    Output,
    /// The output, written as an rgba32float storage texture (to_texture).
    OutputTexture,
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


pub(crate) fn u32_of(x: usize, what: &str) -> Result<u32, String> {
    u32::try_from(x).map_err(|_| format!("{what} = {x} does not fit in u32"))
}

pub(crate) fn expect_inputs(shapes: &[&[usize]], n: usize) -> Result<(), String> {
    if shapes.len() != n {
        return Err(format!("expected {n} inputs, got {}", shapes.len()));
    }
    Ok(())
}

/// The product, saturating at u64::MAX (for FLOP counts).
pub(crate) fn mul(factors: &[u64]) -> u64 {
    factors.iter().fold(1u64, |a, &b| a.saturating_mul(b))
}

/// One op's kernel variants, as a plain enum (`variant_enum!`): chosen by rules per
/// adapter, or by measuring (autotune); named in labels, profiles and the autotune cache.
pub trait Variant: Copy + Eq + std::fmt::Debug + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == name)
    }
}

macro_rules! variant_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl crate::ops::Variant for $name {
            const ALL: &'static [Self] = &[$(Self::$v),+];
            fn name(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
    };
}


variant_enum!(
    /// The variant of an op with a single kernel.
    Single { Main = "main" }
);

/// How a weight input is stored on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputForm {
    /// Widened to f32 in a storage buffer.
    Plain,
    /// A [K, N] matrix that keeps its file dtype (f16 stays packed); CPU adapters also
    /// make an rgba texture of it [N/4 x K] for texture kernels.
    Matrix,
    /// Stacked matrices [E, K, N], widened to f32; CPU adapters also make one tall
    /// texture [N/4 x E*K] of them.
    StackedMatrices,
}

/// The uniform params of an op without a kernel (an alias op such as reshape).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct NoParams {
    _unused: u32,
}

impl UniformLayout for NoParams {
    const WGSL_NAME: &'static str = "";
    const SHADER: &'static str = "";
    fn fields() -> Vec<(&'static str, usize)> {
        vec![]
    }
}

/// One op: its params (the struct itself, serialized into the graph IR), shape rules,
/// kernel variants and plans, f64 reference and FLOP count.
pub trait OpDef: Clone + std::fmt::Debug + PartialEq + Serialize + DeserializeOwned + Into<Op> {
    /// Short name: profiles, labels, the shader file (`NAME.wgsl`) and the op-test table.
    const NAME: &'static str;
    /// The uniform struct its shader reads; the layout test compares it with the WGSL one.
    type Params: UniformLayout;
    type Variant: Variant;
    /// The output is input 0 under another shape: no kernel runs, the memory planner
    /// gives both tensors one buffer.
    const ALIAS: bool = false;
    /// Output shape from input shapes, or what is wrong with them.
    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String>;
    /// The variants that can run this node on this adapter, the rules' choice first.
    fn candidates(&self, _s: &[&[usize]], _ctx: &PlanCtx) -> Vec<Self::Variant> {
        Self::Variant::ALL[..1].to_vec()
    }
    /// The kernel for this node in `variant` (shapes were checked by `infer`).
    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &PlanCtx, variant: Self::Variant) -> Result<KernelPlan, String>;
    /// Float64 CPU reference.
    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64>;
    /// Floating-point operations (multiply-add = 2) per execution; saturating (see `mul`).
    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64;
    /// Every (shader, defines, entry) key any plan can produce, for the naga test.
    fn shader_variants() -> Vec<KernelKey>;
    /// How weight input `input` is stored.
    fn input_form(&self, _input: usize) -> InputForm {
        InputForm::Plain
    }
    /// Inputs `variant` reads through a texture: weights get theirs at upload, and the
    /// lowering pass writes an activation into one with a to_texture node.
    fn texture_inputs(&self, _variant: Self::Variant) -> &'static [usize] {
        &[]
    }
    /// Whether `variant` can write its output straight into the rgba32float texture a
    /// texture kernel reads next (the lowering pass then needs no to_texture node; `plan`
    /// sees `ctx.out_texture` and binds `Arg::OutputTexture`).
    fn texture_output(&self, _variant: Self::Variant) -> bool {
        false
    }
}

/// (shader, WGSL struct name, Rust size, Rust field offsets) of a uniform struct.
pub type Layout = (&'static str, &'static str, usize, Vec<(&'static str, usize)>);

fn layout<T: UniformLayout>() -> Layout {
    (T::SHADER, T::WGSL_NAME, std::mem::size_of::<T>(), T::fields())
}

fn pick<V: Variant>(cands: Vec<V>, forced: Option<&str>) -> Result<V, String> {
    let first = *cands.first().ok_or("no kernel variant can run this node")?;
    match forced {
        None => Ok(first),
        Some(name) => {
            let v = V::from_name(name).ok_or_else(|| {
                format!("unknown variant {name:?} (this op has {:?})", V::ALL.iter().map(|v| v.name()).collect::<Vec<_>>())
            })?;
            // A variant that cannot run this shape falls back to the rules' choice.
            Ok(if cands.contains(&v) { v } else { first })
        }
    }
}

macro_rules! registry {
    ($($file:ident :: $ty:ident),+ $(,)?) => {
        $(pub mod $file; pub use $file::$ty;)+

        /// One node's operation (serialized with its name as the `op` tag).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        pub enum Op { $($ty($ty)),+ }

        $(impl From<$ty> for Op {
            fn from(o: $ty) -> Op { Op::$ty(o) }
        })+

        impl Op {
            /// Every op's short name, in registry order.
            pub const NAMES: &'static [&'static str] = &[$(<$ty as OpDef>::NAME),+];

            pub fn name(&self) -> &'static str {
                match self { $(Op::$ty(_) => <$ty as OpDef>::NAME),+ }
            }
            pub fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
                match self { $(Op::$ty(o) => o.infer(s)),+ }
            }
            /// Names of the variants that can run this node here, the rules' choice first.
            pub fn candidates(&self, s: &[&[usize]], ctx: &PlanCtx) -> Vec<&'static str> {
                match self { $(Op::$ty(o) => o.candidates(s, ctx).into_iter().map(Variant::name).collect()),+ }
            }
            /// Names of all this op's variants.
            pub fn variant_names(&self) -> Vec<&'static str> {
                match self { $(Op::$ty(_) => <<$ty as OpDef>::Variant as Variant>::ALL.iter().map(|v| v.name()).collect()),+ }
            }
            /// The kernel and the variant it uses: `variant` when it can run this shape,
            /// else the rules' choice.
            pub fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &PlanCtx, variant: Option<&str>) -> Result<(KernelPlan, &'static str), String> {
                match self { $(Op::$ty(o) => {
                    let v = pick(o.candidates(s, ctx), variant)?;
                    Ok((o.plan(s, out, ctx, v)?, v.name()))
                }),+ }
            }
            pub fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
                match self { $(Op::$ty(o) => o.reference(x, s, out)),+ }
            }
            pub fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
                match self { $(Op::$ty(o) => o.flops(s, out)),+ }
            }
            pub fn input_form(&self, input: usize) -> InputForm {
                match self { $(Op::$ty(o) => o.input_form(input)),+ }
            }
            /// Inputs the named variant reads through textures.
            pub fn texture_inputs(&self, variant: &str) -> &'static [usize] {
                match self { $(Op::$ty(o) => <<$ty as OpDef>::Variant as Variant>::from_name(variant).map_or(&[], |v| o.texture_inputs(v))),+ }
            }
            /// Whether the named variant can write its output as a texture.
            pub fn texture_output(&self, variant: &str) -> bool {
                match self { $(Op::$ty(o) => <<$ty as OpDef>::Variant as Variant>::from_name(variant).is_some_and(|v| o.texture_output(v))),+ }
            }
            /// No kernel: the output aliases input 0.
            pub fn is_alias(&self) -> bool {
                match self { $(Op::$ty(_) => <$ty as OpDef>::ALIAS),+ }
            }
        }

        /// (op name, whether it is an alias op, uniform layout) of every op.
        pub fn uniform_layouts() -> Vec<(&'static str, bool, Layout)> {
            vec![$((<$ty as OpDef>::NAME, <$ty as OpDef>::ALIAS, layout::<<$ty as OpDef>::Params>())),+]
        }

        /// Every variant name of every op.
        pub fn all_variant_names() -> Vec<&'static str> {
            let mut v: Vec<&'static str> = Vec::new();
            $(v.extend(<<$ty as OpDef>::Variant as Variant>::ALL.iter().map(|x| x.name()));)+
            v.sort_unstable();
            v.dedup();
            v
        }

        /// Every shader variant any plan can produce, for the naga test.
        pub fn all_variants() -> Vec<KernelKey> {
            [$(<$ty as OpDef>::shader_variants()),+].concat()
        }
    };
}

registry! {
    matmul::MatMul,
    layernorm::LayerNorm,
    softmax::Softmax,
    attention::Attention,
    patchify::Patchify,
    token_embed::TokenEmbed,
    pool::Pool,
    unary::Unary,
    reshape::Reshape,
    window_attention::WindowAttention,
    patch_merge::PatchMerge,
    depthwise_conv::DepthwiseConv,
    avg_pool::AvgPool,
    im2col::Im2col,
    channel_scale::ChannelScale,
    embed_tokens::EmbedTokens,
    eos_pool::EosPool,
    norm_dot_head::NormDotHead,
    moe_gate::MoeGate,
    moe_route::MoeRoute,
    moe_dispatch::MoeDispatch,
    expert_matmul::ExpertMatMul,
    moe_combine::MoeCombine,
    to_texture::ToTexture,
    attention_pool::AttentionPool,
    l2_normalize::L2Normalize,
    similarity::Similarity,
}
