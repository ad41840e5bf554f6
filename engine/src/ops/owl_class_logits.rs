//! OWL-ViT / OWLv2 class head, one fused kernel: for image b, patch p and query q,
//! (<img/(|img|+1e-6), t/(|t|+1e-6)> + shift) * (elu(scale) + 1), with t the text
//! embedding after CLIP's L2 normalisation; a query whose first token id is 0 (padding)
//! gets float32's minimum, as transformers does.
use super::{u32_of, uniform, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("owl_class_logits.wgsl", OwlClassLogitsParams {
    batch: u32, patches: u32, queries: u32, dim: u32, seq: u32, _pad0: u32, _pad1: u32, _pad2: u32,
});

/// inputs: image class embeds [B, P, D], shift/scale [B, P, 2], queries [B*Q, D], ids [B*Q, L].
pub fn infer(s: &[&[usize]]) -> Result<Vec<usize>, String> {
    match (s[0], s[1], s[2], s[3]) {
        ([b, p, d], [b2, p2, 2], [bq, d2], [bq2, _]) if b == b2 && p == p2 && d == d2 && bq == bq2 && *b > 0 && bq % b == 0 => {
            Ok(vec![*b, *p, bq / b])
        }
        _ => Err(format!("owl class logits needs [B, P, D], [B, P, 2], [B*Q, D], [B*Q, L]; got {s:?}")),
    }
}

fn key() -> KernelKey {
    KernelKey { shader: "owl_class_logits.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(s: &[&[usize]], out: &[usize]) -> Result<KernelPlan, String> {
    let params = OwlClassLogitsParams {
        batch: u32_of(out[0], "batch")?,
        patches: u32_of(out[1], "patches")?,
        queries: u32_of(out[2], "queries")?,
        dim: u32_of(s[0][2], "dim")?,
        seq: u32_of(s[3][1], "sequence length")?,
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

pub fn reference(x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
    let (b, p, q, d, l) = (out[0], out[1], out[2], s[0][2], s[3][1]);
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let mut o = Vec::with_capacity(b * p * q);
    for bb in 0..b {
        for pp in 0..p {
            let img = &x[0][(bb * p + pp) * d..(bb * p + pp + 1) * d];
            let ni = norm(img) + 1e-6;
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
                let nt2 = 1.0 + 1e-6; // |t / |t|| + 1e-6
                let dot: f64 = img.iter().zip(t).map(|(a, c)| a * c).sum::<f64>() / (ni * nt * nt2);
                o.push((dot + shift) * gain);
            }
        }
    }
    o
}
