// Token embedding: out[n, l, :] = table[ids[n, l], :] + pos[l, :] (ids as f32).
#include "common/index.wgsl"

struct EmbedTokensParams {
    len: u32,
    seq: u32,
    dim: u32,
    vocab: u32,
}

@group(0) @binding(0) var<uniform> p: EmbedTokensParams;
@group(0) @binding(1) var<storage, read> ids: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.len) {
        return;
    }
    let c = idx % p.dim;
    let tok = idx / p.dim;
    let id = min(u32(max(ids[tok], 0.0)), p.vocab - 1u);
    out[idx] = table[id * p.dim + c] + pos[(tok % p.seq) * p.dim + c];
}
