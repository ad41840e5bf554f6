//! MoE dispatch: tokens [T, D] -> the expert-major buffer [E, rows, D] the routing table
//! [T, K, 3] assigns them to; empty slots are zeros.
use super::{u32_of, Arg, KernelPlan, Routing};
use crate::kernels::KernelKey;

uniform!("moe_dispatch.wgsl", MoeDispatchParams {
    tokens: u32, dim: u32, k: u32, rows: u32, experts: u32, group: u32, slots: u32, _pad0: u32,
});

/// x [.., D] with T rows in all, route [T, K, 3].
fn rows_dim(x: &[usize]) -> (usize, usize) {
    let d = *x.last().unwrap_or(&0);
    (x.iter().product::<usize>() / d.max(1), d)
}

pub fn infer(x: &[usize], route: &[usize], experts: usize, routing: &Routing) -> Result<Vec<usize>, String> {
    let (t, d) = rows_dim(x);
    if x.len() < 2 || route.len() != 3 || route[0] != t || route[2] != 3 {
        return Err(format!("moe dispatch needs x [.., D] and a routing table [T, K, 3] over the same tokens, got {x:?} and {route:?}"));
    }
    Ok(vec![experts, routing.rows_per_expert(t), d])
}

fn key() -> KernelKey {
    KernelKey { shader: "moe_dispatch.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(x: &[usize], route: &[usize], out: &[usize], routing: &Routing) -> Result<KernelPlan, String> {
    let (t, d) = rows_dim(x);
    let (group, slots) = routing.group_and_slots();
    let params = MoeDispatchParams {
        tokens: u32_of(t, "tokens")?,
        dim: u32_of(d, "dim")?,
        k: u32_of(route[1], "k")?,
        rows: u32_of(out[1], "dispatch rows")?,
        experts: u32_of(out[0], "experts")?,
        group: u32_of(group, "group")?,
        slots: u32_of(slots, "slots")?,
        _pad0: 0,
    };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, Arg::Output)],
        workgroups: (out[0] * out[1]).div_ceil(64) as u64,
    })
}

pub fn reference(x: &[f64], route: &[f64], xs: &[usize], out: &[usize]) -> Vec<f64> {
    let (_, d) = rows_dim(xs);
    let mut o = vec![0.0; out.iter().product()];
    for (i, c) in route.chunks_exact(3).enumerate() {
        if c[0] >= 0.0 {
            let (row, t) = (c[0] as usize, i / (route.len() / 3 / (x.len() / d)));
            o[row * d..(row + 1) * d].copy_from_slice(&x[t * d..(t + 1) * d]);
        }
    }
    o
}

/// inputs: x [.., D] (T rows), routing table [T, K, 3] -> [E, rows, D].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MoeDispatch { pub experts: usize, pub routing: Routing }

impl super::OpDef for MoeDispatch {
    const NAME: &'static str = "moe_dispatch";
    type Params = MoeDispatchParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 2)?;
        infer(s[0], s[1], self.experts, &self.routing)
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s[0], s[1], out, &self.routing)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], x[1], s[0], out)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
