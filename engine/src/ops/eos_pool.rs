//! Text pooling at the end token: for each sequence, the row at the position of its largest token id
//! (the end-of-text token; the first such position on ties, as torch's argmax).
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("eos_pool.wgsl", EosPoolParams { n: u32, seq: u32, dim: u32, _pad0: u32 });

pub fn infer(x: &[usize], ids: &[usize]) -> Result<Vec<usize>, String> {
    match (x, ids) {
        ([n, l, d], [ni, li]) if n == ni && l == li => Ok(vec![*n, *d]),
        _ => Err(format!("eos pool needs x [N, L, D] and ids [N, L], got {x:?} and {ids:?}")),
    }
}

fn key() -> KernelKey {
    KernelKey { shader: "eos_pool.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(x: &[usize]) -> Result<KernelPlan, String> {
    let params = EosPoolParams { n: u32_of(x[0], "sequences")?, seq: u32_of(x[1], "length")?, dim: u32_of(x[2], "dim")?, _pad0: 0 };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, Arg::Output)],
        workgroups: (x[0] * x[2]).div_ceil(64) as u64,
    })
}

pub fn reference(x: &[f64], ids: &[f64], s: &[usize]) -> Vec<f64> {
    let (n, l, d) = (s[0], s[1], s[2]);
    let mut o = Vec::with_capacity(n * d);
    for i in 0..n {
        let row = &ids[i * l..(i + 1) * l];
        let best = (0..l).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        o.extend_from_slice(&x[(i * l + best) * d..(i * l + best + 1) * d]);
    }
    o
}

/// inputs: x [N, L, D], ids [N, L] -> [N, D] at each sequence's largest id.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EosPool {}

impl super::OpDef for EosPool {
    const NAME: &'static str = "eos_pool";
    type Params = EosPoolParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 2)?;
        infer(s[0], s[1])
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s[0])
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], x[1], s[0])
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
