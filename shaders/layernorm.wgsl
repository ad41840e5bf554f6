// LayerNorm over the last dimension: one workgroup per row, statistics in f32 with a
// two-pass (mean, then centred variance) reduction in workgroup memory.
#include "common/index.wgsl"

struct LayerNormParams {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: LayerNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

fn reduce_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_workgroup(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.dim;
    var s = 0.0;
    for (var c = lid.x; c < p.dim; c += WG) {
        s += x[base + c];
    }
    let mean = reduce_sum(lid.x, s) / f32(p.dim);
    var v = 0.0;
    for (var c = lid.x; c < p.dim; c += WG) {
        let d = x[base + c] - mean;
        v += d * d;
    }
    let var_ = reduce_sum(lid.x, v) / f32(p.dim);
    let inv = inverseSqrt(var_ + p.eps);
    for (var c = lid.x; c < p.dim; c += WG) {
        out[base + c] = (x[base + c] - mean) * inv * gamma[c] + beta[c];
    }
}
