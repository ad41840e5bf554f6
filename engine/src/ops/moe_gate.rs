//! MoE gate: the router matmul (logits = x W, no bias), softmax gates and top-K with ties
//! to the lower index, as the reference MoE inference does. Output [T, K, 3] per token and choice:
//! the dispatch row (-1 for token routing, which moe_route fills in under capacity; the
//! final row for image routing), the gate (combine weight) and the expert.
use super::moe_route::{gates_top_k, Routing};
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("moe_gate.wgsl", MoeGateParams {
    tokens: u32, experts: u32, k: u32, rows: u32, image_tokens: u32, dim: u32, _pad0: u32, _pad1: u32,
});

const MAX_K: usize = 8;
const MAX_E: usize = 64;

/// x [.., D] as (rows, D).
fn rows_dim(x: &[usize]) -> (usize, usize) {
    let d = *x.last().unwrap_or(&0);
    (x.iter().product::<usize>() / d.max(1), d)
}

pub fn infer(x: &[usize], w: &[usize], experts: usize, k: usize, routing: &Routing) -> Result<Vec<usize>, String> {
    let (rows, d) = rows_dim(x);
    if x.len() < 2 || w != [d, experts] {
        return Err(format!("moe gate needs x [.., D] and router weights [D, E={experts}], got {x:?} and {w:?}"));
    }
    if experts == 0 || experts > MAX_E || k == 0 || k > experts || k > MAX_K {
        return Err(format!("{experts} experts with k = {k}: need 1 <= E <= {MAX_E} and 1 <= k <= min(E, {MAX_K})"));
    }
    if let Routing::Token { group, .. } = routing {
        if *group == 0 || rows % group != 0 {
            return Err(format!("{rows} tokens (batch x tokens per image) are not a whole number of routing groups of group_size {group}"));
        }
    }
    Ok(vec![routing.tokens(rows), k, 3])
}

fn key() -> KernelKey {
    KernelKey { shader: "moe_gate.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(x: &[usize], w: &[usize], k: usize, routing: &Routing) -> Result<KernelPlan, String> {
    let (rows, d) = rows_dim(x);
    let t = routing.tokens(rows);
    let image_tokens = match routing {
        Routing::Token { .. } => 0,
        Routing::Image { tokens } => *tokens,
    };
    let params = MoeGateParams {
        tokens: u32_of(t, "tokens")?,
        experts: u32_of(w[1], "experts")?,
        k: k as u32,
        rows: u32_of(routing.rows_per_expert(t), "dispatch rows")?,
        image_tokens: u32_of(image_tokens, "image tokens")?,
        dim: u32_of(d, "dim")?,
        ..Default::default()
    };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, Arg::Output)],
        workgroups: t.div_ceil(64) as u64,
    })
}

pub fn reference(x: &[f64], w: &[f64], s: &[usize], k: usize, routing: &Routing) -> Vec<f64> {
    let (rows, d) = rows_dim(s);
    let e = w.len() / d.max(1);
    let t = routing.tokens(rows);
    let per_expert = routing.rows_per_expert(t);
    let mut out = vec![0.0; t * k * 3];
    for tok in 0..t {
        let row = match routing {
            Routing::Token { .. } => tok,
            Routing::Image { tokens } => tok / tokens,
        };
        let logits: Vec<f64> = (0..e).map(|ex| (0..d).map(|j| x[row * d + j] * w[j * e + ex]).sum()).collect();
        let (gates, top) = gates_top_k(&logits, k);
        for (r, &ex) in top.iter().enumerate() {
            let o = (tok * k + r) * 3;
            out[o] = match routing {
                Routing::Token { .. } => -1.0,
                Routing::Image { .. } => (ex * per_expert + tok) as f64,
            };
            out[o + 1] = gates[ex];
            out[o + 2] = ex as f64;
        }
    }
    out
}

pub fn flops(x: &[usize], w: &[usize]) -> u64 {
    let numel = super::mul(&x.iter().map(|&v| v as u64).collect::<Vec<_>>());
    super::mul(&[2, numel, w[1] as u64])
}

/// inputs: tokens [.., D] (token routing) or mean tokens [B, D] (image routing), router
/// weights [D, E] -> gate table [T, K, 3] (dispatch row: -1 for token routing, final
/// for image routing; gate; expert).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MoeGate { pub experts: usize, pub k: usize, pub routing: Routing }

impl super::OpDef for MoeGate {
    const NAME: &'static str = "moe_gate";
    type Params = MoeGateParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 2)?;
        infer(s[0], s[1], self.experts, self.k, &self.routing)
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s[0], s[1], self.k, &self.routing)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], x[1], s[0], self.k, &self.routing)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        flops(s[0], s[1])
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
