//! MoE slot assignment for token routing, with deterministic inference semantics:
//! per-group expert capacity, rank-by-rank slot filling in token order or batch-priority
//! order. Input: moe_gate's table [T, K, 3]; output the same table with each choice's row
//! of the expert-major dispatch buffer [E, rows, D] (or -1 when dropped).
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::{Define, KernelKey};
use serde::{Deserialize, Serialize};

uniform!("moe_route.wgsl", MoeRouteParams {
    tokens: u32, k: u32, group: u32, capacity: u32, batch_priority: u32, rows: u32, _pad0: u32, _pad1: u32,
});

const MAX_K: u32 = 8;

/// How tokens are assigned to experts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Routing {
    /// Token routing over groups of `group` consecutive tokens with `capacity` slots per
    /// expert and group. Input: tokens [T, D].
    Token { group: usize, capacity: usize, batch_priority: bool },
    /// Image routing: input [B, D], each image's mean token;
    /// all `tokens` tokens of an image go to its experts, no capacity.
    Image { tokens: usize },
}

impl Routing {
    /// Routed tokens for a router input with `rows_in` rows.
    pub fn tokens(&self, rows_in: usize) -> usize {
        match self {
            Routing::Token { .. } => rows_in,
            Routing::Image { tokens } => rows_in * tokens,
        }
    }

    /// Rows of the dispatch buffer per expert (a multiple of 4) for `t` tokens.
    pub fn rows_per_expert(&self, t: usize) -> usize {
        match self {
            Routing::Token { group, capacity, .. } => t / group.max(&1) * capacity,
            Routing::Image { .. } => t.div_ceil(4) * 4,
        }
    }

    /// (tokens per group, dispatch rows per group): which tokens can reach a dispatch row.
    pub fn group_and_slots(&self) -> (usize, usize) {
        match self {
            Routing::Token { group, capacity, .. } => (*group, *capacity),
            Routing::Image { .. } => (1, 1),
        }
    }
}

pub fn infer(table: &[usize], routing: &Routing) -> Result<Vec<usize>, String> {
    let Routing::Token { group, capacity, .. } = routing else {
        return Err("moe route assigns capacity slots for token routing only (image routing is final at the gate)".into());
    };
    let [t, k, 3] = table else {
        return Err(format!("moe route needs a gate table [T, K, 3], got {table:?}"));
    };
    if *k == 0 || *k > MAX_K as usize {
        return Err(format!("k = {k}: need 1 <= k <= {MAX_K}"));
    }
    if *group == 0 || t % group != 0 {
        return Err(format!("{t} tokens (batch x tokens per image) are not a whole number of routing groups of group_size {group}"));
    }
    if capacity % 4 != 0 || *capacity == 0 {
        return Err(format!("capacity {capacity} must be a positive multiple of 4"));
    }
    Ok(table.to_vec())
}

fn key(k: u32) -> KernelKey {
    KernelKey { shader: "moe_route.wgsl", entry: "main", defines: vec![Define::Value("K", k)], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    (1..=MAX_K).map(key).collect()
}

pub fn plan(table: &[usize], routing: &Routing) -> Result<KernelPlan, String> {
    let (t, k) = (table[0], table[1]);
    let Routing::Token { group, capacity, batch_priority } = routing else {
        return Err("moe route needs token routing".into());
    };
    let params = MoeRouteParams {
        tokens: u32_of(t, "tokens")?,
        k: u32_of(k, "k")?,
        group: u32_of(*group, "group size")?,
        capacity: u32_of(*capacity, "capacity")?,
        batch_priority: *batch_priority as u32,
        rows: u32_of(routing.rows_per_expert(t), "dispatch rows")?,
        ..Default::default()
    };
    Ok(KernelPlan {
        chunks: None,
        key: key(k as u32),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Output)],
        workgroups: t.div_ceil(64) as u64,
    })
}

/// Softmax gates of one logits row and its top-k experts (ties to the lower index).
pub fn gates_top_k(logits: &[f64], k: usize) -> (Vec<f64>, Vec<usize>) {
    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = logits.iter().map(|l| (l - m).exp()).sum();
    let gates: Vec<f64> = logits.iter().map(|l| (l - m).exp() / s).collect();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order.truncate(k);
    (gates, order)
}

/// Slot assignment for one group: each token's `top1` gate [S] and top-k `experts`
/// [S][K] -> the position of each choice in its expert, None when dropped.
pub fn assign_slots(top1: &[f64], experts: &[Vec<usize>], experts_n: usize, capacity: usize, batch_priority: bool) -> Vec<Vec<Option<usize>>> {
    let s = top1.len();
    let k = experts.first().map_or(0, Vec::len);
    let mut order: Vec<usize> = (0..s).collect();
    if batch_priority {
        order.sort_by(|&a, &b| top1[b].total_cmp(&top1[a]).then(a.cmp(&b)));
    }
    let mut fill = vec![0usize; experts_n];
    let mut pos = vec![vec![None; k]; s];
    for r in 0..k {
        for &t in &order {
            let ex = experts[t][r];
            if fill[ex] < capacity {
                pos[t][r] = Some(fill[ex]);
                fill[ex] += 1;
            }
        }
    }
    pos
}

pub fn reference(table: &[f64], s: &[usize], routing: &Routing) -> Vec<f64> {
    let (t, k) = (s[0], s[1]);
    let Routing::Token { group, capacity, batch_priority } = routing else { return table.to_vec() };
    let per_expert = routing.rows_per_expert(t);
    let expert = |tok: usize, r: usize| table[(tok * k + r) * 3 + 2] as usize;
    let experts_n = (0..t * k).map(|i| table[i * 3 + 2] as usize + 1).max().unwrap_or(0);
    let mut out = table.to_vec();
    for g in 0..t / group {
        let toks = g * group..(g + 1) * group;
        let top1: Vec<f64> = toks.clone().map(|tok| table[tok * k * 3 + 1]).collect();
        let experts: Vec<Vec<usize>> = toks.clone().map(|tok| (0..k).map(|r| expert(tok, r)).collect()).collect();
        let pos = assign_slots(&top1, &experts, experts_n, *capacity, *batch_priority);
        for (i, tok) in toks.enumerate() {
            for r in 0..k {
                out[(tok * k + r) * 3] = pos[i][r].map_or(-1.0, |p| (experts[i][r] * per_expert + g * capacity + p) as f64);
            }
        }
    }
    out
}

/// inputs: gate table [T, K, 3] -> routing table [T, K, 3] with each choice's dispatch
/// row under capacity (or -1 when dropped). Token routing only.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MoeRoute { pub routing: Routing }

impl super::OpDef for MoeRoute {
    const NAME: &'static str = "moe_route";
    type Params = MoeRouteParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 1)?;
        infer(s[0], &self.routing)
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s[0], &self.routing)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], s[0], &self.routing)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
