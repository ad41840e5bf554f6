// Softmax over the last dimension: one workgroup per row, subtracting the row max.
#include "common/index.wgsl"

struct SoftmaxParams {
    rows: u32,
    dim: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: SoftmaxParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_workgroup(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.dim;
    var mx = -3.0e38;
    for (var c = lid.x; c < p.dim; c += WG) {
        mx = max(mx, x[base + c]);
    }
    red[lid.x] = mx;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            red[lid.x] = max(red[lid.x], red[lid.x + s]);
        }
        workgroupBarrier();
    }
    mx = red[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var c = lid.x; c < p.dim; c += WG) {
        sum += exp(x[base + c] - mx);
    }
    red[lid.x] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            red[lid.x] += red[lid.x + s];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / red[0];
    for (var c = lid.x; c < p.dim; c += WG) {
        out[base + c] = exp(x[base + c] - mx) * inv;
    }
}
