// MoE dispatch: gather each expert's tokens into the expert-major buffer [E, rows, D].
// One invocation per dispatch row: it finds the (token, rank) whose routed row is this
// one among the tokens that can reach it (its group's tokens; for image routing, the
// row's own token), copies that token, or writes zeros for an empty slot.
#include "common/index.wgsl"

struct MoeDispatchParams {
    tokens: u32,
    dim: u32,
    k: u32,
    rows: u32,
    experts: u32,
    group: u32,
    slots: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: MoeDispatchParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> route: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (row >= p.experts * p.rows) {
        return;
    }
    let g = (row % p.rows) / p.slots;
    let t0 = g * p.group;
    let t1 = min(t0 + p.group, p.tokens);
    var src = -1;
    for (var t = t0; t < t1; t++) {
        for (var r = 0u; r < p.k; r++) {
            if (route[(t * p.k + r) * 3u] == f32(row)) {
                src = i32(t);
            }
        }
    }
    for (var d = 0u; d < p.dim; d++) {
        out[row * p.dim + d] = select(0.0, x[u32(max(src, 0)) * p.dim + d], src >= 0);
    }
}
