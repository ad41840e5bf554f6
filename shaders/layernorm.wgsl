// LayerNorm over the last dimension, statistics in f32, two passes (mean, then centred
// variance). `main`: one workgroup per row, reductions in workgroup memory. `main_sg`
// (SG, dim a multiple of 4): one subgroup per row, vec4 loads and subgroupAdd, no
// barriers (on lavapipe each barrier is a coroutine switch); with TEX_OUT it writes the
// rgba32float texture the next texture matmul reads (texel (c4, row) = out[row, 4c4..]).
#include "common/index.wgsl"

struct LayerNormParams {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: LayerNormParams;
#ifdef SG
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gamma4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> beta4: array<vec4<f32>>;
#ifdef TEX_OUT
@group(0) @binding(4) var out_tex: texture_storage_2d<rgba32float, write>;
#else
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;
#endif

const SG_ROWS: u32 = 8u;  // rows per workgroup of 64

@compute @workgroup_size(64)
fn main_sg(@builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(subgroup_invocation_id) lane: u32,
           @builtin(subgroup_size) sg_size: u32) {
    // Subgroups are consecutive local ids; each takes rows s, s + n_sg, .. of the block.
    let width = min(sg_size, 64u);
    let n_sg = 64u / width;
    let s_id = lid.x / width;
    let d4 = p.dim / 4u;
    for (var r = s_id; r < SG_ROWS; r += n_sg) {
        let row = linear_workgroup(wid, nwg) * SG_ROWS + r;
        if (row >= p.rows) {
            break;
        }
        let base = row * d4;
        var s4 = vec4<f32>(0.0);
        for (var c = lane; c < d4; c += width) {
            s4 += x4[base + c];
        }
        let mean = subgroupAdd(s4.x + s4.y + s4.z + s4.w) / f32(p.dim);
        var v4 = vec4<f32>(0.0);
        for (var c = lane; c < d4; c += width) {
            let d = x4[base + c] - mean;
            v4 += d * d;
        }
        let inv = inverseSqrt(subgroupAdd(v4.x + v4.y + v4.z + v4.w) / f32(p.dim) + p.eps);
        for (var c = lane; c < d4; c += width) {
            let y = (x4[base + c] - mean) * inv * gamma4[c] + beta4[c];
#ifdef TEX_OUT
            textureStore(out_tex, vec2<u32>(c, row), y);
#else
            out4[base + c] = y;
#endif
        }
    }
}
#else
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
#endif
