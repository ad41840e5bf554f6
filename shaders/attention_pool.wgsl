// Attention pooling with one query per head: one workgroup per (image, head). Scores go to
// workgroup memory, then max and sum are reduced across the workgroup, then each lane
// sums its head dims over the tokens.
#include "common/index.wgsl"

struct AttentionPoolParams {
    batch: u32,
    tokens: u32,
    heads: u32,
    head_dim: u32,
}

@group(0) @binding(0) var<uniform> p: AttentionPoolParams;
@group(0) @binding(1) var<storage, read> kv: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const MAX_TOKENS: u32 = 2048u;
var<workgroup> scores: array<f32, 2048>;
var<workgroup> red: array<f32, 64>;

fn reduce(lid: u32, is_max: bool) -> f32 {
    for (var s = 32u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            if (is_max) {
                red[lid] = max(red[lid], red[lid + s]);
            } else {
                red[lid] = red[lid] + red[lid + s];
            }
        }
    }
    workgroupBarrier();
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let g = linear_workgroup(wid, nwg);
    if (g >= p.batch * p.heads) {
        return;
    }
    let b = g / p.heads;
    let h = g % p.heads;
    let a = p.heads * p.head_dim;
    let row = 2u * a;
    let kbase = b * p.tokens * row + h * p.head_dim;
    let n = min(p.tokens, MAX_TOKENS);
    var m = -3.4e38;
    for (var j = lid; j < n; j += 64u) {
        var s = 0.0;
        for (var d = 0u; d < p.head_dim; d++) {
            s += q[h * p.head_dim + d] * kv[kbase + j * row + d];
        }
        scores[j] = s;
        m = max(m, s);
    }
    red[lid] = m;
    let mx = reduce(lid, true);
    var sum = 0.0;
    for (var j = lid; j < n; j += 64u) {
        let e = exp(scores[j] - mx);
        scores[j] = e;
        sum += e;
    }
    red[lid] = sum;
    let total = reduce(lid, false);
    for (var d = lid; d < p.head_dim; d += 64u) {
        var acc = 0.0;
        for (var j = 0u; j < n; j++) {
            acc += scores[j] * kv[kbase + a + j * row + d];
        }
        out[b * a + h * p.head_dim + d] = acc / total;
    }
}
