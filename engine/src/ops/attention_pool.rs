//! Attention pooling with one learned query (a multihead attention-pooling "MAP" head):
//! per image and head, softmax(q . k_j) over the tokens, then the weighted sum of the
//! values. The probe's query projection is input-independent, so it arrives computed
//! and pre-scaled (its key-bias term is a constant per head and cancels in the softmax).
use super::{mul, u32_of, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("attention_pool.wgsl", AttentionPoolParams { batch: u32, tokens: u32, heads: u32, head_dim: u32 });

/// The scores of one (image, head) live in workgroup memory.
pub const MAX_TOKENS: usize = 2048;

/// inputs: kv [B, N, 2A] (keys then values), q [A] -> [B, A].
pub fn infer(kv: &[usize], q: &[usize], heads: usize) -> Result<Vec<usize>, String> {
    match (kv, q) {
        ([b, n, a2], [a]) if *a2 == 2 * a && heads > 0 && a % heads == 0 && *n > 0 => {
            if *n > MAX_TOKENS {
                return Err(format!("attention pooling over {n} tokens: at most {MAX_TOKENS}"));
            }
            Ok(vec![*b, *a])
        }
        _ => Err(format!("attention pooling needs kv [B, N, 2A] and q [A] with A divisible by {heads} heads, got {kv:?} and {q:?}")),
    }
}

fn key() -> KernelKey {
    KernelKey { shader: "attention_pool.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(kv: &[usize], heads: usize) -> Result<KernelPlan, String> {
    let a = kv[2] / 2;
    let params = AttentionPoolParams { batch: u32_of(kv[0], "batch")?, tokens: u32_of(kv[1], "tokens")?, heads: u32_of(heads, "heads")?, head_dim: u32_of(a / heads, "head dim")? };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, Arg::Output)],
        workgroups: (kv[0] * heads) as u64,
    })
}

pub fn reference(kv: &[f64], q: &[f64], s: &[usize], heads: usize) -> Vec<f64> {
    let (b, n, a) = (s[0], s[1], s[2] / 2);
    let dh = a / heads;
    let mut out = vec![0.0; b * a];
    for bb in 0..b {
        for h in 0..heads {
            let row = |j: usize, off: usize| &kv[(bb * n + j) * 2 * a + off + h * dh..][..dh];
            let scores: Vec<f64> = (0..n).map(|j| row(j, 0).iter().zip(&q[h * dh..(h + 1) * dh]).map(|(k, q)| k * q).sum()).collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let total: f64 = e.iter().sum();
            for (j, w) in e.iter().enumerate() {
                for (o, v) in out[bb * a + h * dh..][..dh].iter_mut().zip(row(j, a)) {
                    *o += w / total * v;
                }
            }
        }
    }
    out
}

/// inputs: kv [B, N, 2A], q [A] (pre-scaled) -> [B, A].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttentionPool {
    pub heads: usize,
}

impl super::OpDef for AttentionPool {
    const NAME: &'static str = "attention_pool";
    type Params = AttentionPoolParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 2)?;
        infer(s[0], s[1], self.heads)
    }

    fn plan(&self, s: &[&[usize]], _out: &[usize], _ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        plan(s[0], self.heads)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], _out: &[usize]) -> Vec<f64> {
        reference(x[0], x[1], s[0], self.heads)
    }

    fn flops(&self, s: &[&[usize]], _out: &[usize]) -> u64 {
        // q.k and p.v: two multiply-adds per token and channel.
        mul(&[4, s[0][0] as u64, s[0][1] as u64, s[1][0] as u64])
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
