// Patch embedding as a matmul, first half: image [B,C,H,W] (NCHW) -> patches
// [B, Hp*Wp, C*P*P], each row laid out (c, ky, kx) like a flattened conv weight.
// Pixels past the last whole patch are dropped, as a stride-P convolution does, or, when
// the grid is rounded up (transformers pads the image), read as zeros.
#include "common/index.wgsl"

struct PatchifyParams {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    patch_size: u32,
    grid_h: u32,
    grid_w: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: PatchifyParams;
@group(0) @binding(1) var<storage, read> img: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    let pp = p.patch_size * p.patch_size;
    let row_len = p.channels * pp;
    let n_patches = p.grid_h * p.grid_w;
    if (idx >= p.batch * n_patches * row_len) {
        return;
    }
    let col = idx % row_len;
    let bp = idx / row_len;
    let pidx = bp % n_patches;
    let b = bp / n_patches;
    let c = col / pp;
    let ky = (col % pp) / p.patch_size;
    let kx = col % p.patch_size;
    let y = (pidx / p.grid_w) * p.patch_size + ky;
    let xx = (pidx % p.grid_w) * p.patch_size + kx;
    var v = 0.0;
    if (y < p.height && xx < p.width) {
        v = img[((b * p.channels + c) * p.height + y) * p.width + xx];
    }
    out[idx] = v;
}
