//! Fused multi-head self-attention over packed qkv; online softmax, no score matrix in memory.
use super::{Variant, expect_inputs, mul, u32_of, Arg, KernelPlan, OpDef, PlanCtx};
use crate::kernels::{Define, KernelKey};

uniform!("attention.wgsl", AttentionParams {
    batch: u32, tokens: u32, heads: u32, head_dim: u32, scale: f32, causal: u32, _pad1: u32, _pad2: u32,
});

/// Private-array sizes the kernel is compiled for; a head dim uses the smallest that fits.
const HEAD_DIM_BUCKETS: [u32; 6] = [32, 64, 80, 96, 128, 256];

/// Mesa's llvmpipe / lavapipe (gallivm) gives each shader invocation one loop limiter of
/// 65535 back-edges shared by all its loops; past it every loop silently runs once.
/// Kernels whose run-time loop count could exceed this refuse the shape on CPU adapters.
pub const CPU_LOOP_LIMIT: u64 = 65535;

const VEC4_MAX_BUCKET: u32 = 128;

/// Keys per softmax block in the vec4 kernel: the block's keys and head dims are
/// unrolled, so a smaller block for wide heads keeps the unrolled body a fair size.
fn keys_per_block(bucket: u32) -> u32 {
    match bucket {
        0..=64 => 16,
        _ => 4,
    }
}

/// Run-time loop back-edges one invocation takes. The vec4 kernels loop only over key
/// blocks: `kb` keys (vec4: KB; sg: 8; flash: 16-key tiles, whose staging adds a loop of
/// `stage` steps per tile); the scalar kernel also loops over the head dim for every key.
/// With a padding mask, a query whose keys are all masked takes a second pass over the
/// keys in blocks of KB (`masked_kb`).
fn loop_iterations(tokens: u64, head_dim: u64, vec4: bool, kb: u64, stage: u64, masked_kb: u64, key_mask: bool) -> u64 {
    let masked = key_mask as u64;
    if vec4 {
        tokens.div_ceil(kb) * (1 + stage) + masked * tokens.div_ceil(masked_kb) + 1
    } else {
        tokens * (2 * head_dim + 2) + tokens.div_ceil(16) * (head_dim + 2) + 2 * head_dim + masked * tokens * (head_dim + 1)
    }
}

pub fn infer(qkv: &[usize], heads: usize) -> Result<Vec<usize>, String> {
    let [b, n, d3] = qkv else {
        return Err(format!("attention needs qkv [B, N, 3*D], got {qkv:?}"));
    };
    if heads == 0 || d3 % (3 * heads) != 0 {
        return Err(format!("qkv width {d3} is not 3 * heads ({heads}) * head_dim"));
    }
    let hd = d3 / 3 / heads;
    if hd as u32 > HEAD_DIM_BUCKETS[HEAD_DIM_BUCKETS.len() - 1] {
        return Err(format!("head_dim {hd} exceeds the supported maximum 256"));
    }
    Ok(vec![*b, *n, d3 / 3])
}

fn key(bucket: u32, wg: u32, v: AttentionVariant, key_mask: bool, tex_out: bool) -> KernelKey {
    let mut defines = vec![Define::Value("DH", bucket)];
    if v != AttentionVariant::Scalar {
        defines.push(Define::Value("KB", keys_per_block(bucket)));
        defines.push(Define::Flag("VEC4"));
    }
    match v {
        AttentionVariant::Sg => defines.push(Define::Flag("SG")),
        AttentionVariant::Flash => defines.push(Define::Flag("FLASH")),
        _ => {}
    }
    if key_mask {
        defines.push(Define::Flag("KEY_MASK"));
    }
    if tex_out {
        defines.push(Define::Flag("TEX_OUT"));
    }
    KernelKey {
        shader: "attention.wgsl",
        entry: match v {
            AttentionVariant::Sg => "main_sg",
            AttentionVariant::Flash => "main_flash",
            _ => "main",
        },
        defines,
        constants: vec![("WG", wg)],
    }
}

fn variants() -> Vec<KernelKey> {
    use AttentionVariant::*;
    let mut v = Vec::new();
    for &b in &HEAD_DIM_BUCKETS {
        for var in [Scalar, Vec4, Sg, Flash].into_iter().filter(|&v| v == Scalar || b <= VEC4_MAX_BUCKET) {
            for mask in [false, true] {
                v.push(key(b, 32, var, mask, false));
                match var {
                    Flash => v.push(key(b, 64, var, mask, false)),
                    Sg => v.push(key(b, 32, var, mask, true)),
                    _ => {}
                }
            }
        }
    }
    v
}

fn plan(qkv: &[usize], heads: usize, scale: f32, causal: bool, key_mask: bool, ctx: &PlanCtx, v: AttentionVariant) -> Result<KernelPlan, String> {
    let vec4 = v != AttentionVariant::Scalar;
    let (b, n, d) = (qkv[0], qkv[1], qkv[2] / 3);
    let hd = d / heads;
    let bucket = *HEAD_DIM_BUCKETS.iter().find(|&&x| x as usize >= hd).ok_or("head_dim too large")?;
    // CPU adapters run a workgroup as SIMD chunks: 32 query lanes; GPUs use wider groups.
    let wg: u32 = if ctx.caps.cpu { 32 } else { 64 };
    let kb_vec4 = keys_per_block(bucket) as u64;
    // (key block, staging steps per block, block of the all-masked pass)
    let (kb, stage, masked_kb) = match v {
        AttentionVariant::Sg => (8, 0, kb_vec4),
        AttentionVariant::Flash => (16, (16 * bucket as u64 / 4).div_ceil(wg as u64), 16),
        _ => (kb_vec4, 0, kb_vec4),
    };
    let loops = loop_iterations(n as u64, hd as u64, vec4, kb, stage, masked_kb, key_mask);
    if ctx.caps.cpu && loops > CPU_LOOP_LIMIT {
        return Err(format!(
            "attention over {n} tokens with head_dim {hd} needs {loops} loop iterations per invocation; \
             this CPU adapter's shader loops stop after {CPU_LOOP_LIMIT} (use a head_dim that is a multiple of 4)"
        ));
    }
    let params = AttentionParams {
        batch: u32_of(b, "batch")?,
        tokens: u32_of(n, "tokens")?,
        heads: u32_of(heads, "heads")?,
        head_dim: u32_of(hd, "head_dim")?,
        scale,
        causal: causal as u32,
        ..Default::default()
    };
    if ctx.out_texture && v != AttentionVariant::Sg {
        return Err(format!("attention variant {} cannot write a texture", v.name()));
    }
    let mut bindings = vec![(1, Arg::Input(0)), (2, if ctx.out_texture { Arg::OutputTexture } else { Arg::Output })];
    if key_mask {
        bindings.push((3, Arg::Input(1)));
    }
    Ok(KernelPlan {
        chunks: None,
        key: key(bucket, wg, v, key_mask, ctx.out_texture),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings,
        workgroups: (b * heads * n.div_ceil(wg as usize)) as u64,
    })
}

pub fn reference(qkv: &[f64], s: &[usize], heads: usize, scale: f32, causal: bool, mask: Option<&[f64]>) -> Vec<f64> {
    let (b, n, d) = (s[0], s[1], s[2] / 3);
    let hd = d / heads;
    let mut out = vec![0.0; b * n * d];
    let at = |bb: usize, t: usize, which: usize, h: usize, e: usize| qkv[(bb * n + t) * 3 * d + which * d + h * hd + e];
    for bb in 0..b {
        for h in 0..heads {
            for i in 0..n {
                let causal_ok = |j: usize| !causal || j <= i;
                let any = (0..n).any(|j| causal_ok(j) && mask.is_none_or(|m| m[bb * n + j] != 0.0));
                // No key left (all-zero padding mask): uniform over the causal keys, as
                // transformers' additive finfo.min masks give.
                let allowed = |j: usize| causal_ok(j) && (!any || mask.is_none_or(|m| m[bb * n + j] != 0.0));
                let scores: Vec<f64> = (0..n)
                    .map(|j| match (allowed(j), any) {
                        (false, _) => f64::NEG_INFINITY,
                        (true, false) => 0.0,
                        (true, true) => (0..hd).map(|e| at(bb, i, 0, h, e) * at(bb, j, 1, h, e)).sum::<f64>() * scale as f64,
                    })
                    .collect();
                let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let ex: Vec<f64> = scores.iter().map(|x| (x - mx).exp()).collect();
                let sum: f64 = ex.iter().sum();
                for e in 0..hd {
                    out[(bb * n + i) * d + h * hd + e] = (0..n).map(|j| ex[j] * at(bb, j, 2, h, e)).sum::<f64>() / sum;
                }
            }
        }
    }
    out
}

/// inputs: qkv [B, N, 3*heads*head_dim], key mask [B, N] (1 keep, 0 padding) if
/// `key_mask` -> [B, N, heads*head_dim]; `causal` keeps keys j <= i.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attention {
    pub heads: usize,
    pub scale: f32,
    #[serde(default)]
    pub causal: bool,
    #[serde(default)]
    pub key_mask: bool,
}

variant_enum!(AttentionVariant {
    /// vec4 loads with the head-dim and in-block key loops unrolled (head dims that are
    /// a multiple of 4, up to 128).
    Vec4 = "vec4",
    /// One scalar loop over the head dim (any head dim).
    Scalar = "scalar",
    /// `vec4` with each K/V row loaded once per 8 queries and shared by subgroup
    /// broadcasts (subgroups of at least 8 lanes).
    Sg = "sg",
    /// Flash-style (GPUs): tiles of 16 keys staged in workgroup memory for all the
    /// workgroup's queries, online softmax.
    Flash = "flash",
});

impl OpDef for Attention {
    const NAME: &'static str = "attention";
    type Params = AttentionParams;
    type Variant = AttentionVariant;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        expect_inputs(s, 1 + self.key_mask as usize)?;
        if self.key_mask && s[0].len() == 3 && s[1] != &s[0][..2] {
            return Err(format!("key mask must be [B, N] = {:?}, got {:?}", &s[0][..2], s[1]));
        }
        infer(s[0], self.heads)
    }

    fn candidates(&self, s: &[&[usize]], ctx: &PlanCtx) -> Vec<AttentionVariant> {
        let hd = s[0][2] / 3 / self.heads.max(1);
        let bucket = HEAD_DIM_BUCKETS.iter().copied().find(|&x| x as usize >= hd).unwrap_or(u32::MAX);
        // vec4 needs whole vec4 columns; NIR does not unroll the 64-trip loops of the 256
        // bucket, which takes the scalar kernel.
        let sg = ctx.caps.subgroup && ctx.caps.subgroup_min_size >= 8;
        if hd.is_multiple_of(4) && bucket <= VEC4_MAX_BUCKET {
            use AttentionVariant::*;
            match (sg, ctx.caps.cpu) {
                (true, true) => vec![Sg, Vec4, Scalar, Flash],
                (true, false) => vec![Flash, Vec4, Sg, Scalar],
                (false, true) => vec![Vec4, Scalar, Flash],
                (false, false) => vec![Flash, Vec4, Scalar],
            }
        } else {
            vec![AttentionVariant::Scalar]
        }
    }

    fn plan(&self, s: &[&[usize]], _out: &[usize], ctx: &PlanCtx, v: AttentionVariant) -> Result<KernelPlan, String> {
        plan(s[0], self.heads, self.scale, self.causal, self.key_mask, ctx, v)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], _out: &[usize]) -> Vec<f64> {
        reference(x[0], s[0], self.heads, self.scale, self.causal, self.key_mask.then(|| x[1]))
    }

    fn texture_output(&self, v: AttentionVariant) -> bool {
        v == AttentionVariant::Sg
    }

    fn flops(&self, s: &[&[usize]], _out: &[usize]) -> u64 {
        let (b, n, d3) = (s[0][0] as u64, s[0][1] as u64, s[0][2] as u64);
        // QK^T and PV: 2 * (2 * n * n * d) per batch, d = d3 / 3.
        mul(&[4, b, n, n, d3 / 3])
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
