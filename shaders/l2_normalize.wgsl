// out[r, :] = x[r, :] / |x[r, :]|: one workgroup per row, the sum of squares reduced in
// workgroup memory.
#include "common/index.wgsl"

struct L2NormalizeParams {
    rows: u32,
    dim: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: L2NormalizeParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let lid = lid3.x;
    let r = linear_workgroup(wid, nwg);
    if (r >= p.rows) {
        return;
    }
    let base = r * p.dim;
    var s = 0.0;
    for (var d = lid; d < p.dim; d += 64u) {
        s += x[base + d] * x[base + d];
    }
    red[lid] = s;
    for (var k = 32u; k > 0u; k = k >> 1u) {
        workgroupBarrier();
        if (lid < k) {
            red[lid] = red[lid] + red[lid + k];
        }
    }
    workgroupBarrier();
    let n = sqrt(red[0]);
    let inv = select(0.0, 1.0 / n, n > 0.0);
    for (var d = lid; d < p.dim; d += 64u) {
        out[base + d] = x[base + d] * inv;
    }
}
