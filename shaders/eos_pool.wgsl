// out[n, :] = x[n, argmax_l ids[n, l], :] (first position of the largest id).
#include "common/index.wgsl"

struct EosPoolParams {
    n: u32,
    seq: u32,
    dim: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: EosPoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.n * p.dim) {
        return;
    }
    let i = idx / p.dim;
    let c = idx % p.dim;
    var best = 0u;
    for (var j = 1u; j < p.seq; j++) {
        if (ids[i * p.seq + j] > ids[i * p.seq + best]) {
            best = j;
        }
    }
    out[idx] = x[(i * p.seq + best) * p.dim + c];
}
