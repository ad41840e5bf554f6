//! Fused multi-head self-attention over packed qkv; online softmax, no score matrix in memory.
use super::{u32_of, uniform, Arg, KernelPlan, PlanCtx};
use crate::kernels::{Define, KernelKey};

uniform!("attention.wgsl", AttentionParams {
    batch: u32, tokens: u32, heads: u32, head_dim: u32, scale: f32, causal: u32, _pad1: u32, _pad2: u32,
});

/// Private-array sizes the kernel is compiled for; a head dim uses the smallest that fits.
const HEAD_DIM_BUCKETS: [u32; 4] = [32, 64, 128, 256];

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

fn key(bucket: u32, wg: u32, key_mask: bool) -> KernelKey {
    let mut defines = vec![Define::Value("DH", bucket)];
    if key_mask {
        defines.push(Define::Flag("KEY_MASK"));
    }
    KernelKey {
        shader: "attention.wgsl",
        entry: "main",
        defines,
        constants: vec![("WG", wg)],
    }
}

pub fn variants() -> Vec<KernelKey> {
    HEAD_DIM_BUCKETS.iter().flat_map(|&b| [key(b, 32, false), key(b, 32, true)]).collect()
}

pub fn plan(qkv: &[usize], heads: usize, scale: f32, causal: bool, key_mask: bool, ctx: &PlanCtx) -> Result<KernelPlan, String> {
    let (b, n, d) = (qkv[0], qkv[1], qkv[2] / 3);
    let hd = d / heads;
    let bucket = *HEAD_DIM_BUCKETS.iter().find(|&&x| x as usize >= hd).ok_or("head_dim too large")?;
    // CPU adapters run a workgroup as SIMD chunks: 32 query lanes; GPUs use wider groups.
    let wg: u32 = if ctx.caps.cpu { 32 } else { 64 };
    let params = AttentionParams {
        batch: u32_of(b, "batch")?,
        tokens: u32_of(n, "tokens")?,
        heads: u32_of(heads, "heads")?,
        head_dim: u32_of(hd, "head_dim")?,
        scale,
        causal: causal as u32,
        ..Default::default()
    };
    let mut bindings = vec![(1, Arg::Input(0)), (2, Arg::Output)];
    if key_mask {
        bindings.push((3, Arg::Input(1)));
    }
    Ok(KernelPlan {
        key: key(bucket, wg, key_mask),
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
                let allowed = |j: usize| (!causal || j <= i) && mask.is_none_or(|m| m[bb * n + j] != 0.0);
                let scores: Vec<f64> = (0..n)
                    .map(|j| if allowed(j) { (0..hd).map(|e| at(bb, i, 0, h, e) * at(bb, j, 1, h, e)).sum::<f64>() * scale as f64 } else { f64::NEG_INFINITY })
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
