// Average pooling k x k over a channels-last map [B, H*W, C] -> [B, Ho*Wo, C], with
// stride and explicit top/left zero padding; padding counts as zeros (PyTorch's
// count_include_pad), so every window divides by k*k.
#include "common/index.wgsl"

struct AvgPoolParams {
    batch: u32,
    height: u32,
    width: u32,
    channels: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: AvgPoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.batch * p.out_h * p.out_w * p.channels) {
        return;
    }
    let c = idx % p.channels;
    let pix = idx / p.channels;
    let ox = pix % p.out_w;
    let oy = (pix / p.out_w) % p.out_h;
    let b = pix / (p.out_w * p.out_h);
    var acc = 0.0;
    for (var ky = 0u; ky < p.kernel; ky++) {
        // Signed arithmetic through u32 wrap-around: rows above the map wrap to huge values.
        let y = oy * p.stride + ky - p.pad_top;
        if (y >= p.height) {
            continue;
        }
        for (var kx = 0u; kx < p.kernel; kx++) {
            let xx = ox * p.stride + kx - p.pad_left;
            if (xx >= p.width) {
                continue;
            }
            acc += x[((b * p.height + y) * p.width + xx) * p.channels + c];
        }
    }
    out[idx] = acc / f32(p.kernel * p.kernel);
}
