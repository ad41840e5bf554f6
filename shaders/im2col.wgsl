// Image-to-column gather for a k x k convolution: out[b, oy*Wo+ox, (ky*k+kx)*C + c] is the
// input pixel under that tap (zero outside the map), read from an NCHW image
// (channels_first = 1) or a channels-last [B, H*W, C] map. One invocation per output word
// (`main`) or per 4 (`main_quad`).
#include "common/index.wgsl"

struct Im2colParams {
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
    channels_first: u32,
    row0: u32,  // the first output row of this dispatch (the output is bound from there)
    rows: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Im2colParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
#ifdef TEX_OUT
// The output as the next texture matmul's A texture (texel (c4, pixel) = columns 4c4..).
@group(0) @binding(2) var out_tex: texture_storage_2d<rgba32float, write>;
#else
#ifdef QUAD
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;
#else
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
#endif
#endif

// The input value under column `col` of output pixel `pix` (0 outside the map).
fn value(pix: u32, col: u32) -> f32 {
    let c = col % p.channels;
    let tap = col / p.channels;
    let ox = pix % p.out_w;
    let oy = (pix / p.out_w) % p.out_h;
    let b = pix / (p.out_w * p.out_h);
    // Rows/columns above or left of the map wrap around to huge u32 values.
    let y = oy * p.stride + tap / p.kernel - p.pad_top;
    let xx = ox * p.stride + tap % p.kernel - p.pad_left;
    var v = 0.0;
    if (y < p.height && xx < p.width) {
        if (p.channels_first == 1u) {
            v = x[((b * p.channels + c) * p.height + y) * p.width + xx];
        } else {
            v = x[((b * p.height + y) * p.width + xx) * p.channels + c];
        }
    }
    return v;
}

#ifdef QUAD
// QUAD (columns a multiple of 4): one invocation per 4 consecutive columns, written as
// one vec4 (TEX_OUT: one texel of the next matmul's A texture).
@compute @workgroup_size(64)
fn main_quad(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let local = linear_workgroup(wid, nwg) * 64u + lid.x;
    let cols4 = p.kernel * p.kernel * p.channels / 4u;
    if (local >= p.rows * cols4) {
        return;
    }
    let c4 = local % cols4;
    let pix = p.row0 + local / cols4;
    let v = vec4<f32>(value(pix, 4u * c4), value(pix, 4u * c4 + 1u), value(pix, 4u * c4 + 2u), value(pix, 4u * c4 + 3u));
#ifdef TEX_OUT
    textureStore(out_tex, vec2<u32>(c4, pix), v);
#else
    out4[local] = v;
#endif
}
#else
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let local = linear_workgroup(wid, nwg) * 64u + lid.x;
    let cols = p.kernel * p.kernel * p.channels;
    if (local >= p.rows * cols) {
        return;
    }
    out[local] = value(p.row0 + local / cols, local % cols);
}
#endif
