//! Normalized-dot class head, one fused kernel: for image b, patch p and query q,
//! (<img/(|img| + ei), t/(|t| + et)> + shift) * (elu(scale) + 1), with t the L2-normalised
//! query embedding and (shift, scale) per patch; a query whose first token id is 0
//! (padding) gets float32's minimum.
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("norm_dot_head.wgsl", NormDotHeadParams {
    batch: u32, patches: u32, queries: u32, dim: u32, seq: u32, image_eps: f32, text_eps: f32, _pad0: u32,
});

/// inputs: image class embeds [B, P, D], shift/scale [B, P, 2], queries [B*Q, D], ids [B*Q, L].
pub fn infer(s: &[&[usize]]) -> Result<Vec<usize>, String> {
    match (s[0], s[1], s[2], s[3]) {
        ([b, p, d], [b2, p2, 2], [bq, d2], [bq2, _]) if b == b2 && p == p2 && d == d2 && bq == bq2 && *b > 0 && bq % b == 0 => {
            Ok(vec![*b, *p, bq / b])
        }
        _ => Err(format!("normalized-dot head needs [B, P, D], [B, P, 2], [B*Q, D], [B*Q, L]; got {s:?}")),
    }
}

fn key() -> KernelKey {
    KernelKey { shader: "norm_dot_head.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

fn plan(s: &[&[usize]], out: &[usize], image_eps: f32, text_eps: f32) -> Result<KernelPlan, String> {
    let params = NormDotHeadParams {
        batch: u32_of(out[0], "batch")?,
        patches: u32_of(out[1], "patches")?,
        queries: u32_of(out[2], "queries")?,
        dim: u32_of(s[0][2], "dim")?,
        seq: u32_of(s[3][1], "sequence length")?,
        image_eps,
        text_eps,
        ..Default::default()
    };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, Arg::Input(2)), (4, Arg::Input(3)), (5, Arg::Output)],
        workgroups: out.iter().product::<usize>().div_ceil(64) as u64,
    })
}

fn reference(x: &[&[f64]], s: &[&[usize]], out: &[usize], image_eps: f64, text_eps: f64) -> Vec<f64> {
    let (b, p, q, d, l) = (out[0], out[1], out[2], s[0][2], s[3][1]);
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let mut o = Vec::with_capacity(b * p * q);
    for bb in 0..b {
        for pp in 0..p {
            let img = &x[0][(bb * p + pp) * d..(bb * p + pp + 1) * d];
            let ni = norm(img) + image_eps;
            let (shift, scale) = (x[1][(bb * p + pp) * 2], x[1][(bb * p + pp) * 2 + 1]);
            let gain = if scale > 0.0 { scale } else { scale.exp() - 1.0 } + 1.0;
            for qq in 0..q {
                let qi = bb * q + qq;
                if x[3][qi * l] <= 0.0 {
                    o.push(f32::MIN as f64);
                    continue;
                }
                let t = &x[2][qi * d..(qi + 1) * d];
                let nt = norm(t);
                let nt2 = 1.0 + text_eps; // |t / |t|| + eps
                let dot: f64 = img.iter().zip(t).map(|(a, c)| a * c).sum::<f64>() / (ni * nt * nt2);
                o.push((dot + shift) * gain);
            }
        }
    }
    o
}

/// inputs: image class embeds [B, P, D], shift/scale [B, P, 2], query embeds [B*Q, D],
/// query ids [B*Q, L] -> logits [B, P, Q].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NormDotHead { pub image_eps: f32, pub text_eps: f32 }

impl super::OpDef for NormDotHead {
    const NAME: &'static str = "norm_dot_head";
    type Params = NormDotHeadParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 4)?;
        infer(s)
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s, out, self.image_eps, self.text_eps)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x, s, out, self.image_eps as f64, self.text_eps as f64)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        let (p, q, d) = (out.iter().product::<usize>() as u64, 1u64, s[0].get(2).copied().unwrap_or(0) as u64);
        super::mul(&[2, p, q, d])
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
