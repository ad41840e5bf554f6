//! MoE routing with vmoe's deterministic inference semantics, fused with the router
//! matmul (logits = x W, no bias): softmax gates, top-K with
//! ties to the lower index, per-group expert capacity, rank-by-rank slot filling in token
//! order or batch-priority order; or Mobile V-MoE's per-image routing. Output [T, K, 3]:
//! per token and choice, the row of the expert-major dispatch buffer [E, rows, D] (or -1
//! when dropped), the gate (combine weight), and the expert.
use super::{u32_of, uniform, Arg, KernelPlan};
use crate::kernels::KernelKey;
use serde::{Deserialize, Serialize};

uniform!("moe_route.wgsl", MoeRouteParams {
    tokens: u32, experts: u32, k: u32, group: u32, capacity: u32, batch_priority: u32, rows: u32, image_tokens: u32,
    dim: u32, _pad0: u32, _pad1: u32, _pad2: u32,
});

const MAX_K: usize = 8;
const MAX_E: usize = 64;

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

/// vmoe's capacity: ceil(S * K * cf / E), rounded up to a multiple of 4.
pub fn capacity(group: usize, k: usize, capacity_factor: f64, experts: usize) -> usize {
    let c = (group as f64 * k as f64 * capacity_factor / experts as f64).ceil() as usize;
    c.div_ceil(4) * 4
}

/// x [.., D] as (rows, D).
fn rows_dim(x: &[usize]) -> (usize, usize) {
    let d = *x.last().unwrap_or(&0);
    (x.iter().product::<usize>() / d.max(1), d)
}

pub fn infer(x: &[usize], w: &[usize], experts: usize, k: usize, routing: &Routing) -> Result<Vec<usize>, String> {
    let (rows, d) = rows_dim(x);
    if x.len() < 2 || w != [d, experts] {
        return Err(format!("moe route needs x [.., D] and router weights [D, E={experts}], got {x:?} and {w:?}"));
    }
    let rows = &rows;
    if experts > MAX_E || k == 0 || k > experts || k > MAX_K {
        return Err(format!("{experts} experts with k = {k}: need E <= {MAX_E} and 1 <= k <= min(E, {MAX_K})"));
    }
    if let Routing::Token { group, capacity, .. } = routing {
        if *group == 0 || rows % group != 0 {
            return Err(format!("{rows} tokens (batch x tokens per image) are not a whole number of routing groups of group_size {group}"));
        }
        if capacity % 4 != 0 || *capacity == 0 {
            return Err(format!("capacity {capacity} must be a positive multiple of 4"));
        }
    }
    Ok(vec![routing.tokens(*rows), k, 3])
}

fn key(image: bool) -> KernelKey {
    KernelKey { shader: "moe_route.wgsl", entry: if image { "main_image" } else { "main_token" }, defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key(false), key(true)]
}

pub fn plan(x: &[usize], w: &[usize], k: usize, routing: &Routing) -> Result<KernelPlan, String> {
    let (rows, d) = rows_dim(x);
    let e = w[1];
    let t = routing.tokens(rows);
    let (group, capacity, bpr, image_tokens) = match routing {
        Routing::Token { group, capacity, batch_priority } => (*group, *capacity, *batch_priority, 0),
        Routing::Image { tokens } => (1, 0, false, *tokens),
    };
    let params = MoeRouteParams {
        tokens: u32_of(t, "tokens")?,
        experts: u32_of(e, "experts")?,
        k: k as u32,
        group: u32_of(group, "group size")?,
        capacity: u32_of(capacity, "capacity")?,
        batch_priority: bpr as u32,
        rows: u32_of(routing.rows_per_expert(t), "dispatch rows")?,
        image_tokens: u32_of(image_tokens, "image tokens")?,
        dim: u32_of(d, "dim")?,
        ..Default::default()
    };
    let image = matches!(routing, Routing::Image { .. });
    Ok(KernelPlan {
        key: key(image),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, Arg::Output)],
        workgroups: if image { t.div_ceil(64) as u64 } else { (t / group) as u64 },
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

/// vmoe slot assignment for one group: `gates` [S, E] and each token's top-k `experts`
/// [S][K] -> the position of each choice in its expert, None when dropped.
pub fn assign_slots(gates: &[Vec<f64>], experts: &[Vec<usize>], capacity: usize, batch_priority: bool) -> Vec<Vec<Option<usize>>> {
    let s = gates.len();
    let k = experts.first().map_or(0, Vec::len);
    let mut order: Vec<usize> = (0..s).collect();
    if batch_priority {
        order.sort_by(|&a, &b| gates[b][experts[b][0]].total_cmp(&gates[a][experts[a][0]]).then(a.cmp(&b)));
    }
    let e = gates.first().map_or(0, Vec::len);
    let mut fill = vec![0usize; e];
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

pub fn reference(x: &[f64], w: &[f64], s: &[usize], k: usize, routing: &Routing) -> Vec<f64> {
    let (rows, d) = rows_dim(s);
    let e = w.len() / d.max(1);
    let mut logits = vec![0.0; rows * e];
    for r in 0..rows {
        for j in 0..d {
            for ex in 0..e {
                logits[r * e + ex] += x[r * d + j] * w[j * e + ex];
            }
        }
    }
    let t = routing.tokens(rows);
    let per_expert = routing.rows_per_expert(t);
    let mut out = vec![0.0; t * k * 3];
    match routing {
        Routing::Token { group, capacity, batch_priority } => {
            for g in 0..rows / group {
                let (mut gates, mut experts) = (Vec::new(), Vec::new());
                for i in 0..*group {
                    let row = g * group + i;
                    let (gt, ex) = gates_top_k(&logits[row * e..(row + 1) * e], k);
                    gates.push(gt);
                    experts.push(ex);
                }
                let pos = assign_slots(&gates, &experts, *capacity, *batch_priority);
                for i in 0..*group {
                    for r in 0..k {
                        let o = ((g * group + i) * k + r) * 3;
                        let ex = experts[i][r];
                        out[o] = pos[i][r].map_or(-1.0, |p| (ex * per_expert + g * capacity + p) as f64);
                        out[o + 1] = gates[i][ex];
                        out[o + 2] = ex as f64;
                    }
                }
            }
        }
        Routing::Image { tokens } => {
            for tok in 0..t {
                let b = tok / tokens;
                let (gates, ex) = gates_top_k(&logits[b * e..(b + 1) * e], k);
                for (r, &x) in ex.iter().enumerate() {
                    let o = (tok * k + r) * 3;
                    out[o] = (x * per_expert + tok) as f64;
                    out[o + 1] = gates[x];
                    out[o + 2] = x as f64;
                }
            }
        }
    }
    out
}
