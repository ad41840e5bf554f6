//! MoE combine: residual [.., D] plus, per token, the gate-weighted expert outputs of its
//! kept choices, read from the expert-major buffer [E, rows, D] through the routing table.
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("moe_combine.wgsl", MoeCombineParams { tokens: u32, dim: u32, k: u32, _pad0: u32 });

pub fn infer(y: &[usize], route: &[usize], residual: &[usize]) -> Result<Vec<usize>, String> {
    let d = *residual.last().unwrap_or(&0);
    let t = residual.iter().product::<usize>() / d.max(1);
    match (y, route) {
        ([_, _, yd], [rt, _, 3]) if *yd == d && *rt == t => Ok(residual.to_vec()),
        _ => Err(format!("moe combine needs y [E, rows, D], route [T, K, 3], residual [.., D] with T rows; got {y:?}, {route:?}, {residual:?}")),
    }
}

fn key() -> KernelKey {
    KernelKey { shader: "moe_combine.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(route: &[usize], out: &[usize]) -> Result<KernelPlan, String> {
    let d = *out.last().unwrap_or(&0);
    let len: usize = out.iter().product();
    let params = MoeCombineParams { tokens: u32_of(len / d.max(1), "tokens")?, dim: u32_of(d, "dim")?, k: u32_of(route[1], "k")?, _pad0: 0 };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, Arg::Input(2)), (4, Arg::Output)],
        workgroups: len.div_ceil(64) as u64,
    })
}

pub fn reference(y: &[f64], route: &[f64], residual: &[f64], k: usize) -> Vec<f64> {
    let d = residual.len() / (route.len() / 3 / k);
    let mut o = residual.to_vec();
    for (i, c) in route.chunks_exact(3).enumerate() {
        if c[0] >= 0.0 {
            let (row, t) = (c[0] as usize, i / k);
            for j in 0..d {
                o[t * d + j] += c[1] * y[row * d + j];
            }
        }
    }
    o
}

/// inputs: y [E, rows, D], routing table [T, K, 3], residual [.., D] -> residual's shape.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MoeCombine {}

impl super::OpDef for MoeCombine {
    const NAME: &'static str = "moe_combine";
    type Params = MoeCombineParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 3)?;
        infer(s[0], s[1], s[2])
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s[1], out)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], x[1], x[2], s[1][1])
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
