// MoE slot assignment for token routing (deterministic inference semantics): from the gate table
// [T, K, 3] (-1, gate, expert) of moe_gate, the dispatch row of every choice in the
// expert-major buffer [E, rows, D]: e * rows + g * capacity + position, or -1 when the
// expert's `capacity` slots in the group are full. Every rank fills slots before the
// next one; within a rank in token order or, with batch priority, in descending top-1
// gate (stable). So a choice's position is (choices of e at earlier ranks, capped at
// capacity) + (choices of e at this rank by tokens that precede it).
// One invocation per token, scanning its group once (`group` back-edges: real groups of
// 8 images x 577 tokens stay far under lavapipe's 65535-back-edge loop limiter; the rank
// loops run over the preprocessor constant K, so they unroll).
#include "common/index.wgsl"

struct MoeRouteParams {
    tokens: u32,
    k: u32,
    group: u32,
    capacity: u32,
    batch_priority: u32,
    rows: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: MoeRouteParams;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn expert_of(t: u32, r: u32) -> u32 {
    return u32(gate[(t * p.k + r) * 3u + 2u]);
}

fn top1(t: u32) -> f32 {
    return gate[t * p.k * 3u + 1u];
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (t >= p.tokens) {
        return;
    }
    let g = t / p.group;
    let t0 = g * p.group;
    let gt = top1(t);
    var mine: array<u32, K>;
    var before: array<u32, K>;  // choices of mine[r] at ranks < r, whole group
    var ahead: array<u32, K>;   // choices of mine[r] at rank r by preceding tokens
    for (var r = 0u; r < K; r++) {
        mine[r] = expert_of(t, r);
        before[r] = 0u;
        ahead[r] = 0u;
    }
    for (var j = 0u; j < p.group; j++) {
        let tj = t0 + j;
        var precedes = tj < t;
        if (p.batch_priority == 1u) {
            let gj = top1(tj);
            precedes = gj > gt || (gj == gt && tj < t);
        }
        var theirs: array<u32, K>;
        for (var r = 0u; r < K; r++) {
            theirs[r] = expert_of(tj, r);
        }
        for (var r = 0u; r < K; r++) {
            for (var r2 = 0u; r2 < K; r2++) {
                before[r] += u32(r2 < r && theirs[r2] == mine[r]);
            }
            ahead[r] += u32(precedes && theirs[r] == mine[r]);
        }
    }
    for (var r = 0u; r < K; r++) {
        {
            let o = (t * p.k + r) * 3u;
            let pos = min(before[r], p.capacity) + ahead[r];
            var slot = -1.0;
            if (pos < p.capacity) {
                slot = f32(mine[r] * p.rows + g * p.capacity + pos);
            }
            out[o] = slot;
            out[o + 1u] = gate[o + 1u];
            out[o + 2u] = gate[o + 2u];
        }
    }
}
