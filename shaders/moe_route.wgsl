// MoE routing (vmoe inference semantics), fused with the router: logits = x W (no bias)
// for each token's row of x [rows, D] and W [D, E], computed in registers. Output per token and choice
// rank r: [dispatch row or -1, gate, expert], the dispatch row being e * rows + g * capacity
// + position in the expert-major dispatch buffer [E, rows, D].
// main_token: one workgroup per group of `group` consecutive tokens. Pass 1: softmax over
// the E experts and top-K (ties to the lower index). Pass 2: positions; every rank fills
// slots before the next one, within a rank in token order or, with batch priority, in
// descending top-1 gate (stable); position >= capacity is a dropped choice.
// main_image: one invocation per token; x holds one row per image (its mean token), and
// every token follows its image, without capacity.
#include "common/index.wgsl"

struct MoeRouteParams {
    tokens: u32,
    experts: u32,
    k: u32,
    group: u32,
    capacity: u32,
    batch_priority: u32,
    rows: u32,
    image_tokens: u32,
    dim: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: MoeRouteParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const MAX_K: u32 = 8u;
const MAX_E: u32 = 64u;

// Router logits of row `row`, their softmax and top-K, written as (-1, gate, expert) for token t.
fn select_experts(row: u32, t: u32) {
    var logits: array<f32, MAX_E>;
    for (var e = 0u; e < p.experts; e++) {
        logits[e] = 0.0;
    }
    for (var d = 0u; d < p.dim; d++) {
        let xv = x[row * p.dim + d];
        for (var e = 0u; e < p.experts; e++) {
            logits[e] += xv * w[d * p.experts + e];
        }
    }
    var m = logits[0];
    for (var e = 1u; e < p.experts; e++) {
        m = max(m, logits[e]);
    }
    var s = 0.0;
    for (var e = 0u; e < p.experts; e++) {
        s += exp(logits[e] - m);
    }
    var chosen: array<u32, MAX_K>;
    for (var r = 0u; r < p.k; r++) {
        var best = 0u;
        var best_v = -3.0e38;
        var found = false;
        for (var e = 0u; e < p.experts; e++) {
            var taken = false;
            for (var q = 0u; q < r; q++) {
                taken = taken || chosen[q] == e;
            }
            let v = logits[e];
            if (!taken && (!found || v > best_v)) {
                best = e;
                best_v = v;
                found = true;
            }
        }
        chosen[r] = best;
        let o = (t * p.k + r) * 3u;
        out[o] = -1.0;
        out[o + 1u] = exp(best_v - m) / s;
        out[o + 2u] = f32(best);
    }
}

fn expert_of(t: u32, r: u32) -> u32 {
    return u32(out[(t * p.k + r) * 3u + 2u]);
}

fn top1(t: u32) -> f32 {
    return out[t * p.k * 3u + 1u];
}

@compute @workgroup_size(64)
fn main_token(@builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = linear_workgroup(wid, nwg);
    let t0 = g * p.group;
    if (t0 >= p.tokens) {
        return;
    }
    for (var i = lid.x; i < p.group; i += 64u) {
        select_experts(t0 + i, t0 + i);
    }
    storageBarrier();
    for (var i = lid.x; i < p.group; i += 64u) {
        let t = t0 + i;
        let gt = top1(t);
        for (var r = 0u; r < p.k; r++) {
            let e = expert_of(t, r);
            var before = 0u;  // choices of e at earlier ranks (they fill first)
            var ahead = 0u;   // tokens ahead of t at this rank that chose e
            for (var j = 0u; j < p.group; j++) {
                let tj = t0 + j;
                for (var r2 = 0u; r2 < r; r2++) {
                    before += u32(expert_of(tj, r2) == e);
                }
                var precedes = tj < t;
                if (p.batch_priority == 1u) {
                    let gj = top1(tj);
                    precedes = gj > gt || (gj == gt && tj < t);
                }
                ahead += u32(precedes && expert_of(tj, r) == e);
            }
            let pos = min(before, p.capacity) + ahead;
            if (pos < p.capacity) {
                out[(t * p.k + r) * 3u] = f32(e * p.rows + g * p.capacity + pos);
            }
        }
    }
}

@compute @workgroup_size(64)
fn main_image(@builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (t >= p.tokens) {
        return;
    }
    select_experts(t / p.image_tokens, t);
    for (var r = 0u; r < p.k; r++) {
        let o = (t * p.k + r) * 3u;
        out[o] = f32(u32(out[o + 2u]) * p.rows + t);
    }
}
