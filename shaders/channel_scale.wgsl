// Squeeze-excitation's gate: out[b, t, c] = x[b, t + skip, c] * act(s[b, c]).
#include "common/act.wgsl"
#include "common/index.wgsl"

struct ChannelScaleParams {
    len: u32,
    tokens: u32,
    channels: u32,
    act: u32,
    skip: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ChannelScaleParams;
#ifdef QUAD
// QUAD (channels a multiple of 4): 4 channels per invocation, vec4 loads; with TEX_OUT the
// result goes into the next texture matmul's A texture (texel (c4, row)).
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> s4: array<vec4<f32>>;
#ifdef TEX_OUT
@group(0) @binding(3) var out_tex: texture_storage_2d<rgba32float, write>;
#else
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;
#endif

@compute @workgroup_size(64)
fn main_quad(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let c4s = p.channels / 4u;
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.len / 4u) {
        return;
    }
    let c = idx % c4s;
    let row = idx / c4s;
    let t = row % p.tokens;
    let b = row / p.tokens;
    let g = s4[b * c4s + c];
    let gate = vec4<f32>(apply_act(p.act, g.x), apply_act(p.act, g.y), apply_act(p.act, g.z), apply_act(p.act, g.w));
    let y = x4[(b * (p.tokens + p.skip) + t + p.skip) * c4s + c] * gate;
#ifdef TEX_OUT
    textureStore(out_tex, vec2<u32>(c, row), y);
#else
    out4[idx] = y;
#endif
}
#else
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> s: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.len) {
        return;
    }
    let c = idx % p.channels;
    let t = (idx / p.channels) % p.tokens;
    let b = idx / (p.channels * p.tokens);
    let src = (b * (p.tokens + p.skip) + t + p.skip) * p.channels + c;
    out[idx] = x[src] * apply_act(p.act, s[b * p.channels + c]);
}
#endif
