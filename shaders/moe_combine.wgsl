// MoE combine: out[t] = residual[t] + sum over kept choices of gate * expert_out[row],
// reading the routed rows of the expert-major buffer [E, rows, D].
#include "common/index.wgsl"

struct MoeCombineParams {
    tokens: u32,
    dim: u32,
    k: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: MoeCombineParams;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> route: array<f32>;
@group(0) @binding(3) var<storage, read> residual: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.tokens * p.dim) {
        return;
    }
    let t = idx / p.dim;
    let d = idx % p.dim;
    var v = residual[idx];
    for (var r = 0u; r < p.k; r++) {
        let row = route[(t * p.k + r) * 3u];
        if (row >= 0.0) {
            v += route[(t * p.k + r) * 3u + 1u] * y[u32(row) * p.dim + d];
        }
    }
    out[idx] = v;
}
