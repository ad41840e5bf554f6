// Depthwise k x k convolution over a channels-last map [B, H*W, C] -> [B, Ho*Wo, C], with
// stride, explicit top/left zero padding (TF "same" padding is asymmetric, PyTorch's is
// symmetric: the graph decides), per-channel bias (BatchNorm folded in at conversion)
// and a fused activation. Weights are [k*k, C]: tap-major, so lanes (channels) read
// consecutive words.
#include "common/act.wgsl"
#include "common/index.wgsl"

struct DepthwiseConvParams {
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
    act: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: DepthwiseConvParams;
#ifdef VEC4
// VEC4 (channels a multiple of 4): 4 channels per lane, every load and store a vec4.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main_vec4(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let c4s = p.channels / 4u;
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.batch * p.out_h * p.out_w * c4s) {
        return;
    }
    let c = idx % c4s;
    let pix = idx / c4s;
    let ox = pix % p.out_w;
    let oy = (pix / p.out_w) % p.out_h;
    let b = pix / (p.out_w * p.out_h);
    var acc = bias4[c];
    for (var ky = 0u; ky < p.kernel; ky++) {
        let y = oy * p.stride + ky - p.pad_top;
        if (y >= p.height) {
            continue;
        }
        for (var kx = 0u; kx < p.kernel; kx++) {
            let xx = ox * p.stride + kx - p.pad_left;
            if (xx >= p.width) {
                continue;
            }
            acc += x4[((b * p.height + y) * p.width + xx) * c4s + c] * w4[(ky * p.kernel + kx) * c4s + c];
        }
    }
    out4[idx] = vec4<f32>(apply_act(p.act, acc.x), apply_act(p.act, acc.y), apply_act(p.act, acc.z), apply_act(p.act, acc.w));
}
#else
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

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
    var acc = bias[c];
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
            let tap_w = w[(ky * p.kernel + kx) * p.channels + c];
            acc += x[((b * p.height + y) * p.width + xx) * p.channels + c] * tap_w;
        }
    }
    out[idx] = apply_act(p.act, acc);
}
#endif
