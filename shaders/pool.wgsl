// Token pooling [B, T, D] -> [B, D]: mean over tokens [start, end) (global average
// pooling; end = start + 1 selects one token, e.g. the class token).
#include "common/index.wgsl"

struct PoolParams {
    batch: u32,
    tokens: u32,
    dim: u32,
    start: u32,
    end: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.batch * p.dim) {
        return;
    }
    let d = idx % p.dim;
    let b = idx / p.dim;
    var s = 0.0;
    for (var t = p.start; t < p.end; t++) {
        s += x[(b * p.tokens + t) * p.dim + d];
    }
    out[idx] = s / f32(p.end - p.start);
}
