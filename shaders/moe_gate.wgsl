// MoE gate (deterministic inference semantics), fused with the router: logits = x W (no bias) for
// each token's row of x [rows, D] and W [D, E], softmax over the E experts and top-K
// (ties to the lower index). Output per token and choice rank r: [dispatch row, gate,
// expert]. Token routing leaves the dispatch row at -1 for moe_route (capacity); image
// routing (x holds one mean-token row per image, every token follows its
// image without capacity) writes the final row e * rows + t.
// One invocation per token. The router matmul keeps the experts in vec4 registers with a
// constant trip count (unrolled), so its only run-time loop is over D: lavapipe's shared
// loop limiter (65535 back-edges per invocation) stays far away.
#include "common/index.wgsl"

struct MoeGateParams {
    tokens: u32,
    experts: u32,
    k: u32,
    rows: u32,
    image_tokens: u32,
    dim: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: MoeGateParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const MAX_K: u32 = 8u;
const MAX_E4: u32 = 16u;  // 64 experts

fn logit(l: array<vec4<f32>, MAX_E4>, e: u32) -> f32 {
    return l[e / 4u][e % 4u];
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (t >= p.tokens) {
        return;
    }
    var row = t;
    if (p.image_tokens > 0u) {
        row = t / p.image_tokens;
    }
    let e4n = (p.experts + 3u) / 4u;
    let last = p.experts - 1u;
    var acc: array<vec4<f32>, MAX_E4>;
    for (var d = 0u; d < p.dim; d++) {
        let xv = x[row * p.dim + d];
        let base = d * p.experts;
        for (var e4 = 0u; e4 < MAX_E4; e4++) {
            if (e4 < e4n) {
                let e = 4u * e4;
                let wv = vec4<f32>(w[base + min(e, last)], w[base + min(e + 1u, last)],
                                   w[base + min(e + 2u, last)], w[base + min(e + 3u, last)]);
                acc[e4] += xv * wv;
            }
        }
    }
    var logits = acc;
    var m = logit(logits, 0u);
    for (var e = 1u; e < p.experts; e++) {
        m = max(m, logit(logits, e));
    }
    var s = 0.0;
    for (var e = 0u; e < p.experts; e++) {
        s += exp(logit(logits, e) - m);
    }
    var chosen: array<u32, MAX_K>;
    for (var r = 0u; r < p.k; r++) {
        var best = 0u;
        var best_v = -3.0e38;
        var found = false;
        for (var e = 0u; e < p.experts; e++) {
            var taken = false;
            for (var q = 0u; q < MAX_K; q++) {
                taken = taken || (q < r && chosen[q] == e);
            }
            let v = logit(logits, e);
            if (!taken && (!found || v > best_v)) {
                best = e;
                best_v = v;
                found = true;
            }
        }
        chosen[r] = best;
        let o = (t * p.k + r) * 3u;
        out[o] = select(-1.0, f32(best * p.rows + t), p.image_tokens > 0u);
        out[o + 1u] = exp(best_v - m) / s;
        out[o + 2u] = f32(best);
    }
}
