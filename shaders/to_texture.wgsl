// Write a row-major [rows, 4*k4] activation into an rgba32float storage texture of k4 x rows
// texels, for the texture matmul on CPU adapters (any K that is a multiple of 4; a
// buffer-to-texture copy would need rows of a multiple of 256 bytes).
#include "common/index.wgsl"

struct ToTextureParams {
    rows: u32,
    k4: u32,
    row0: u32,  // texture row of x's first row (x is bound from there: large activations go in ranges)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: ToTextureParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var t: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.rows * p.k4) {
        return;
    }
    textureStore(t, vec2<u32>(idx % p.k4, p.row0 + idx / p.k4), x[idx]);
}
