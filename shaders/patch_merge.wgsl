// Patch merging: a channels-last map [B, H*W, C] -> [B, ceil(H/2)*ceil(W/2), 4C],
// each output token the concatenation of its 2x2 block in the order (0,0), (1,0),
// (0,1), (1,1) as (row, column) offsets; rows/columns past an odd edge read as zero.
#include "common/index.wgsl"

struct PatchMergeParams {
    batch: u32,
    height: u32,
    width: u32,
    channels: u32,
}

@group(0) @binding(0) var<uniform> p: PatchMergeParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let oh = (p.height + 1u) / 2u;
    let ow = (p.width + 1u) / 2u;
    let c4 = 4u * p.channels;
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.batch * oh * ow * c4) {
        return;
    }
    let ch = idx % c4;
    let tok = idx / c4;
    let b = tok / (oh * ow);
    let oy = (tok / ow) % oh;
    let ox = tok % ow;
    let part = ch / p.channels;
    let y = oy * 2u + part % 2u;
    let xx = ox * 2u + part / 2u;
    var v = 0.0;
    if (y < p.height && xx < p.width) {
        v = x[((b * p.height + y) * p.width + xx) * p.channels + ch % p.channels];
    }
    out[idx] = v;
}
