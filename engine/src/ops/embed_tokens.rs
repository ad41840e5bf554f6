//! Token embedding lookup plus learned positions: ids [N, L] (token ids stored as f32,
//! exact below 2^24) -> table[id] + pos[l], [N, L, D]. Ids are checked on the host
//! before a run; the kernel clamps to the table as a last guard.
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("embed_tokens.wgsl", EmbedTokensParams { len: u32, seq: u32, dim: u32, vocab: u32 });

pub fn infer(s: &[&[usize]]) -> Result<Vec<usize>, String> {
    match (s[0], s[1], s[2]) {
        ([n, l], [_, d], [pl, pd]) if d == pd && l <= pl => Ok(vec![*n, *l, *d]),
        _ => Err(format!("embed tokens needs ids [N, L], table [V, D], positions [>= L, D]; got {:?}", s)),
    }
}

fn key() -> KernelKey {
    KernelKey { shader: "embed_tokens.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(s: &[&[usize]], out: &[usize]) -> Result<KernelPlan, String> {
    let len: usize = out.iter().product();
    let params = EmbedTokensParams {
        len: u32_of(len, "elements")?,
        seq: u32_of(s[0][1], "sequence length")?,
        dim: u32_of(s[1][1], "dim")?,
        vocab: u32_of(s[1][0], "vocabulary")?,
    };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, Arg::Input(2)), (4, Arg::Output)],
        workgroups: len.div_ceil(64) as u64,
    })
}

pub fn reference(x: &[&[f64]], s: &[&[usize]]) -> Vec<f64> {
    let (n, l, d) = (s[0][0], s[0][1], s[1][1]);
    let mut o = Vec::with_capacity(n * l * d);
    for i in 0..n * l {
        let id = x[0][i] as usize;
        for c in 0..d {
            o.push(x[1][id * d + c] + x[2][(i % l) * d + c]);
        }
    }
    o
}

/// inputs: ids [N, L] (as f32), table [V, D], positions [>= L, D] -> [N, L, D].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmbedTokens {}

impl super::OpDef for EmbedTokens {
    const NAME: &'static str = "embed_tokens";
    type Params = EmbedTokensParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 3)?;
        infer(s)
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s, out)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x, s)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
