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
