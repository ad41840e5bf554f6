// Elementwise activation (GELU exact / tanh, QuickGELU, tanh, ReLU) over a flat tensor.
#include "common/act.wgsl"
#include "common/index.wgsl"

struct UnaryParams {
    len: u32,
    act: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: UnaryParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.len) {
        return;
    }
    out[idx] = apply_act(p.act, x[idx]);
}
