// out[i, j] = exp(scale) * dot(a[i, :], b[j, :]) + (bias ? shift : 0).
#include "common/index.wgsl"

struct SimilarityParams {
    rows: u32,
    cols: u32,
    dim: u32,
    bias: u32,
}

@group(0) @binding(0) var<uniform> p: SimilarityParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> logit_scale: array<f32>;
@group(0) @binding(4) var<storage, read> logit_bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.rows * p.cols) {
        return;
    }
    let i = idx / p.cols;
    let j = idx % p.cols;
    var s = 0.0;
    for (var d = 0u; d < p.dim; d++) {
        s += a[i * p.dim + d] * b[j * p.dim + d];
    }
    var shift = 0.0;
    if (p.bias != 0u) {
        shift = logit_bias[0];
    }
    out[idx] = exp(logit_scale[0]) * s + shift;
}
