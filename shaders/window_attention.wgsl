// Shifted-window multi-head attention and grid attention over a
// channels-last map, straight from the
// packed qkv of the unpadded map [B, H*W, 3*C] (columns (3, heads, head_dim)).
// The cyclic shift, the padding to whole windows, the window partition and the window
// reverse are all index arithmetic here: every lane owns one position of one window of
// the shifted, padded map, finds the map position it came from, and writes its output
// back there. Padded positions are zero vectors before the qkv projection, so their key
// and value are the qkv bias (zero without one); they are attended to, never written.
// Scores: q.k * scale + relative-position bias [heads, N, N] + (-100 between positions
// of different shift regions), online softmax as in attention.wgsl.
#include "common/index.wgsl"
#ifdef SG
#include "common/subgroup.wgsl"
#endif

struct WindowAttentionParams {
    batch: u32,
    height: u32,
    width: u32,
    heads: u32,
    head_dim: u32,
    win_h: u32,
    win_w: u32,
    shift_h: u32,
    shift_w: u32,
    // 0: roll, then pad; 1: pad, then roll
    pad_first: u32,
    // 1: grid attention (window (wy, wx) = positions (ty*H/wh + wy, tx*W/ww + wx))
    grid: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: WindowAttentionParams;
#ifdef SG
@group(0) @binding(1) var<storage, read> qkv4: array<vec4<f32>>;
#else
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
#endif
@group(0) @binding(2) var<storage, read> rel_bias: array<f32>;
#ifdef PAD_BIAS
@group(0) @binding(3) var<storage, read> qkv_bias: array<f32>;
#endif
#ifdef TEX_OUT
// SG only: the output as the next texture matmul's A texture (texel (c4, map row)).
@group(0) @binding(4) var out_tex: texture_storage_2d<rgba32float, write>;
#else
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
#endif

override WG: u32 = 64u;
const KB: u32 = 16u;  // keys per softmax block
const MAXW: u32 = 32u; // largest window side

// Source row/column on the unpadded map of shifted-padded coordinate `s`, or `len`
// (meaning: a padding position).
fn source(s: u32, len: u32, padded: u32, shift: u32) -> u32 {
    if (p.pad_first == 1u) {
        let q = (s + shift) % padded;
        return select(len, q, q < len);
    }
    if (s >= len) {
        return len;
    }
    return (s + shift) % len;
}

// Map row of row `t` of window row `wi` (or column, given the column arguments), or
// `len` for padding.
fn coord(wi: u32, t: u32, win: u32, len: u32, padded: u32, shift: u32) -> u32 {
    if (p.grid == 1u) {
        return t * (len / win) + wi;
    }
    return source(wi * win + t, len, padded, shift);
}

// Shift region of a shifted-padded coordinate (the peer libraries' img_mask slices).
fn region(s: u32, padded: u32, win: u32, shift: u32) -> u32 {
    if (shift == 0u) {
        return 0u;
    }
    if (s < padded - win) {
        return 0u;
    }
    return select(2u, 1u, s < padded - shift);
}

#ifndef SG
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = p.win_h * p.win_w;
    let hp = (p.height + p.win_h - 1u) / p.win_h * p.win_h;
    let wp = (p.width + p.win_w - 1u) / p.win_w * p.win_w;
    let nwin_w = wp / p.win_w;
    let nwin = (hp / p.win_h) * nwin_w;
    let chunks = (n + WG - 1u) / WG;
    let tile = linear_workgroup(wid, nwg);
    let chunk = tile % chunks;
    let rest = tile / chunks;
    let win = rest % nwin;
    let bh = rest / nwin;
    if (bh >= p.batch * p.heads) {
        return;
    }
    let b = bh / p.heads;
    let h = bh % p.heads;
    let wyi = win / nwin_w;
    let wxi = win % nwin_w;
    let wy0 = wyi * p.win_h;
    let wx0 = wxi * p.win_w;
    let d_model = p.heads * p.head_dim;
    let row_stride = 3u * d_model;
    let batch_base = b * p.height * p.width * row_stride;

    let i = chunk * WG + lid.x;
    let qi = min(i, n - 1u);
    let qsy = wy0 + qi / p.win_w;
    let qsx = wx0 + qi % p.win_w;
    let qy = coord(wyi, qi / p.win_w, p.win_h, p.height, hp, p.shift_h);
    let qx = coord(wxi, qi % p.win_w, p.win_w, p.width, wp, p.shift_w);
    let q_pad = qy == p.height || qx == p.width;
    let q_region = region(qsy, hp, p.win_h, p.shift_h) * 3u + region(qsx, wp, p.win_w, p.shift_w);
    let q_row = batch_base + (min(qy, p.height - 1u) * p.width + min(qx, p.width - 1u)) * row_stride;

    var q: array<f32, DH>;
    var acc: array<f32, DH>;
    for (var d = 0u; d < p.head_dim; d++) {
        // A padded query's output is never stored; its q only has to be finite.
        q[d] = qkv[q_row + h * p.head_dim + d] * p.scale;
        acc[d] = 0.0;
    }
    // The window's key rows and columns on the unpadded map (== height / width for
    // padding) and their shift regions, computed once: the key loop below walks them
    // with counters instead of dividing (integer division is scalar on SIMD CPUs).
    var ky: array<u32, MAXW>;
    var kyr: array<u32, MAXW>;
    var kx: array<u32, MAXW>;
    var kxr: array<u32, MAXW>;
    for (var t = 0u; t < p.win_h; t++) {
        ky[t] = coord(wyi, t, p.win_h, p.height, hp, p.shift_h);
        kyr[t] = region(wy0 + t, hp, p.win_h, p.shift_h) * 3u;
    }
    for (var t = 0u; t < p.win_w; t++) {
        kx[t] = coord(wxi, t, p.win_w, p.width, wp, p.shift_w);
        kxr[t] = region(wx0 + t, wp, p.win_w, p.shift_w);
    }
    var jy = 0u;
    var jx = 0u;
    let bias_row = (h * n + qi) * n;
    var m = -3.0e38;
    var l = 0.0;
    var sc: array<f32, KB>;
    var krow: array<u32, KB>;
    var kpad: array<bool, KB>;
    for (var j0 = 0u; j0 < n; j0 += KB) {
        let kb = min(KB, n - j0);
        var bmax = m;
        for (var jj = 0u; jj < kb; jj++) {
            let y = ky[jy];
            let x = kx[jx];
            let pad = y == p.height || x == p.width;
            let region = kyr[jy] + kxr[jx];
            let row = min(y, p.height - 1u) * p.width + min(x, p.width - 1u);
            jx += 1u;
            if (jx == p.win_w) {
                jx = 0u;
                jy += 1u;
            }
            krow[jj] = row;
            kpad[jj] = pad;
            var dot = 0.0;
            if (pad) {
#ifdef PAD_BIAS
                for (var d = 0u; d < p.head_dim; d++) {
                    dot += q[d] * qkv_bias[d_model + h * p.head_dim + d];
                }
#endif
            } else {
                let kr = batch_base + row * row_stride + d_model + h * p.head_dim;
                for (var d = 0u; d < p.head_dim; d++) {
                    dot += q[d] * qkv[kr + d];
                }
            }
            var s = dot + rel_bias[bias_row + j0 + jj];
            if (region != q_region) {
                s -= 100.0;
            }
            sc[jj] = s;
            bmax = max(bmax, s);
        }
        let corr = exp(m - bmax);
        l *= corr;
        for (var d = 0u; d < p.head_dim; d++) {
            acc[d] *= corr;
        }
        for (var jj = 0u; jj < kb; jj++) {
            let pj = exp(sc[jj] - bmax);
            l += pj;
            if (kpad[jj]) {
#ifdef PAD_BIAS
                for (var d = 0u; d < p.head_dim; d++) {
                    acc[d] += pj * qkv_bias[2u * d_model + h * p.head_dim + d];
                }
#endif
            } else {
                let vr = batch_base + krow[jj] * row_stride + 2u * d_model + h * p.head_dim;
                for (var d = 0u; d < p.head_dim; d++) {
                    acc[d] += pj * qkv[vr + d];
                }
            }
        }
        m = bmax;
    }
    if (i < n && !q_pad) {
        let o = (b * p.height * p.width + qy * p.width + qx) * d_model + h * p.head_dim;
        let inv = 1.0 / l;
        for (var d = 0u; d < p.head_dim; d++) {
            out[o + d] = acc[d] * inv;
        }
    }
}
#else
// SG (head dims a multiple of 4, subgroups of at least 8 lanes): vec4 head-dim loops
// unrolled (DH4 constant) and, per block of 8 keys, lane g of each 8-lane group finds
// key j0 + g on the map and loads its K (then V) row once; `spread8` shares the rows
// and the keys' padding and shift regions with the group. The queries of a workgroup
// are one window's, so the group's keys are the same for all its lanes.
const DH4: u32 = DH / 4u;

fn pad_kv4(which: u32, h: u32, d4: u32) -> vec4<f32> {
#ifdef PAD_BIAS
    let o = which * p.heads * p.head_dim + h * p.head_dim + 4u * d4;
    return vec4<f32>(qkv_bias[o], qkv_bias[o + 1u], qkv_bias[o + 2u], qkv_bias[o + 3u]);
#else
    return vec4<f32>(0.0);
#endif
}

@compute @workgroup_size(WG)
fn main_sg(@builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(subgroup_invocation_id) sg_lane: u32,
           @builtin(subgroup_size) sg_size: u32) {
    let n = p.win_h * p.win_w;
    let hp = (p.height + p.win_h - 1u) / p.win_h * p.win_h;
    let wp = (p.width + p.win_w - 1u) / p.win_w * p.win_w;
    let nwin_w = wp / p.win_w;
    let nwin = (hp / p.win_h) * nwin_w;
    let chunks = (n + WG - 1u) / WG;
    let tile = linear_workgroup(wid, nwg);
    let chunk = tile % chunks;
    let rest = tile / chunks;
    let win = rest % nwin;
    let bh = rest / nwin;
    if (bh >= p.batch * p.heads) {
        return;
    }
    let b = bh / p.heads;
    let h = bh % p.heads;
    let wyi = win / nwin_w;
    let wxi = win % nwin_w;
    let wy0 = wyi * p.win_h;
    let wx0 = wxi * p.win_w;
    let hd4 = p.head_dim / 4u;
    let d_model4 = p.heads * hd4;
    let row4 = 3u * d_model4;
    let batch_base = b * p.height * p.width * row4;

    let i = chunk * WG + lid.x;
    let qi = min(i, n - 1u);
    let qy = coord(wyi, qi / p.win_w, p.win_h, p.height, hp, p.shift_h);
    let qx = coord(wxi, qi % p.win_w, p.win_w, p.width, wp, p.shift_w);
    let q_pad = qy == p.height || qx == p.width;
    let q_region = region(wy0 + qi / p.win_w, hp, p.win_h, p.shift_h) * 3u + region(wx0 + qi % p.win_w, wp, p.win_w, p.shift_w);
    let q_row = batch_base + (min(qy, p.height - 1u) * p.width + min(qx, p.width - 1u)) * row4 + h * hd4;

    // Lanes past the head's dim hold q = 0 and read a clamped column (see attention.wgsl).
    var q: array<vec4<f32>, DH4>;
    var acc: array<vec4<f32>, DH4>;
    for (var d = 0u; d < DH4; d++) {
        q[d] = select(vec4<f32>(0.0), qkv4[q_row + min(d, hd4 - 1u)] * p.scale, d < hd4);
    }
    let g = sg_lane % 8u;
    let bias_row = (h * n + qi) * n;
    var m = -3.0e38;
    var l = 0.0;
    for (var j0 = 0u; j0 < n; j0 += 8u) {
        // This lane's key of the block: where it is, padding or not, its shift region.
        let t = min(j0 + g, n - 1u);
        let ky = coord(wyi, t / p.win_w, p.win_h, p.height, hp, p.shift_h);
        let kx = coord(wxi, t % p.win_w, p.win_w, p.width, wp, p.shift_w);
        let kpad = ky == p.height || kx == p.width;
        let kreg = region(wy0 + t / p.win_w, hp, p.win_h, p.shift_h) * 3u + region(wx0 + t % p.win_w, wp, p.win_w, p.shift_w);
        let krow = batch_base + (min(ky, p.height - 1u) * p.width + min(kx, p.width - 1u)) * row4 + h * hd4;
        let info = spread8(vec4<f32>(f32(kreg), select(0.0, 1.0, kpad), 0.0, 0.0), sg_lane, sg_size);
        var dot4: array<vec4<f32>, 8>;
        for (var d = 0u; d < DH4; d++) {
            var kd = qkv4[krow + d_model4 + min(d, hd4 - 1u)];
            if (kpad) {
                kd = pad_kv4(1u, h, min(d, hd4 - 1u));
            }
            let k = spread8(kd, sg_lane, sg_size);
            for (var jj = 0u; jj < 8u; jj++) {
                dot4[jj] += q[d] * k[jj];
            }
        }
        var sc: array<f32, 8>;
        var bmax = m;
        for (var jj = 0u; jj < 8u; jj++) {
            var s = dot4[jj].x + dot4[jj].y + dot4[jj].z + dot4[jj].w + rel_bias[bias_row + min(j0 + jj, n - 1u)];
            if (u32(info[jj].x) != q_region) {
                s -= 100.0;
            }
            sc[jj] = s;
            if (j0 + jj < n) {
                bmax = max(bmax, s);
            }
        }
        let corr = exp(m - bmax);
        l *= corr;
        var pj: array<f32, 8>;
        for (var jj = 0u; jj < 8u; jj++) {
            pj[jj] = select(0.0, exp(sc[jj] - bmax), j0 + jj < n);
            l += pj[jj];
        }
        for (var d = 0u; d < DH4; d++) {
            var vd = qkv4[krow + 2u * d_model4 + min(d, hd4 - 1u)];
            if (kpad) {
                vd = pad_kv4(2u, h, min(d, hd4 - 1u));
            }
            let v = spread8(vd, sg_lane, sg_size);
            var a = acc[d] * corr;
            for (var jj = 0u; jj < 8u; jj++) {
                a += pj[jj] * v[jj];
            }
            acc[d] = a;
        }
        m = bmax;
    }
    if (i < n && !q_pad) {
        let inv = 1.0 / l;
        let r = b * p.height * p.width + qy * p.width + qx;
#ifdef TEX_OUT
        for (var d = 0u; d < DH4; d++) {
            if (d < hd4) {
                textureStore(out_tex, vec2<u32>(h * hd4 + d, r), acc[d] * inv);
            }
        }
#else
        let o = r * p.heads * p.head_dim + h * p.head_dim;
        for (var d = 0u; d < DH4; d++) {
            if (d < hd4) {
                let v = acc[d] * inv;
                out[o + 4u * d] = v.x;
                out[o + 4u * d + 1u] = v.y;
                out[o + 4u * d + 2u] = v.z;
                out[o + 4u * d + 3u] = v.w;
            }
        }
#endif
    }
}
#endif
