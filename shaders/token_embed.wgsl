// Token sequence assembly: prepend the prefix tokens (class + register tokens) to the
// patch tokens and add the position embedding to tokens [pos_start, T).
#include "common/index.wgsl"

struct TokenEmbedParams {
    batch: u32,
    patches: u32,
    prefix: u32,
    dim: u32,
    pos_start: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: TokenEmbedParams;
@group(0) @binding(1) var<storage, read> patches: array<f32>;
#ifdef PREFIX
@group(0) @binding(2) var<storage, read> prefix: array<f32>;
#endif
#ifdef POS
@group(0) @binding(3) var<storage, read> pos: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    let tokens = p.prefix + p.patches;
    if (idx >= p.batch * tokens * p.dim) {
        return;
    }
    let d = idx % p.dim;
    let t = (idx / p.dim) % tokens;
    let b = idx / (p.dim * tokens);
    var v = 0.0;
    if (t < p.prefix) {
#ifdef PREFIX
        v = prefix[t * p.dim + d];
#endif
    } else {
        v = patches[(b * p.patches + t - p.prefix) * p.dim + d];
    }
#ifdef POS
    if (t >= p.pos_start) {
        v += pos[(t - p.pos_start) * p.dim + d];
    }
#endif
    out[idx] = v;
}
