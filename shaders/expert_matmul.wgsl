// Grouped expert matmul: out[e, r, :] = act(a[e, r, :] @ w[e] + bias[e]) for every expert
// in one dispatch. Each lane computes a 4x4 tile (4 rows of one expert, rows per expert
// being a multiple of 4, and 4 columns).
#include "common/act.wgsl"
#include "common/index.wgsl"
#ifdef SG
#include "common/subgroup.wgsl"
#endif

struct ExpertMatmulParams {
    experts: u32,
    rows: u32,
    k: u32,
    n: u32,
    act: u32,
    expert0: u32,  // first expert of this dispatch: a and out are bound from it, w and bias whole
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ExpertMatmulParams;
#ifdef TEX
// CPU adapters: A as K/4 x (E*R) texels, W as N/4 x (E*K) texels (expert e's rows from e*K).
@group(0) @binding(1) var a_tex: texture_2d<f32>;
@group(0) @binding(2) var w_tex: texture_2d<f32>;
#else
#ifdef TILED4
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w4: array<vec4<f32>>;
#else
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
#endif
#endif
#ifdef BIAS
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn store(row: u32, col: u32, e: u32, acc: f32) {
    var v = acc;
#ifdef BIAS
    v += bias[e * p.n + col];
#endif
    out[row * p.n + col] = apply_act(p.act, v);
}

#ifdef TILED4
// TILED4 (GPUs; K and N multiples of 4): matmul's 64x64 workgroup tile
// (common/tiled4.wgsl) per expert: workgroup (e, row tile, column tile).
alias TW = f32;
fn w_vec4(idx: u32) -> vec4<f32> {
    return w4[idx];
}
#include "common/tiled4.wgsl"

@compute @workgroup_size(16, 16)
fn main_tiled4(@builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let n4 = p.n / 4u;
    let tiles_n = (n4 + 15u) / 16u;
    let tiles_r = (p.rows + 63u) / 64u;
    let tile = linear_workgroup(wid, nwg);
    let el = tile / (tiles_r * tiles_n);
    if (el >= p.experts) {
        return;
    }
    let row_base = ((tile / tiles_n) % tiles_r) * 64u;
    let c4_base = (tile % tiles_n) * 16u;
    let e = p.expert0 + el;
    let acc = tiled4_acc(lid, row_base, p.rows, c4_base, p.k, n4, el * p.rows, e * p.k);
    let c4 = c4_base + lid.x;
    if (c4 >= n4) {
        return;
    }
    var res = acc;
    for (var i = 0u; i < 4u; i++) {
        let r = row_base + lid.y * 4u + i;
        if (r < p.rows) {
            let v = res[i];
            for (var j = 0u; j < 4u; j++) {
                store(el * p.rows + r, 4u * c4 + j, e, v[j]);
            }
        }
    }
}
#else
#ifdef SG
// SG: ER rows (8, or 4 when rows per expert are not a multiple of 8) x 4*EC columns
// (EC = 2) per lane; lanes go in groups of 8 sharing one row block, lane j covering
// column texels (cg*8 + j)*EC ..
// Lane j loads the A texel of row j % ER and `spread8` hands the rows to the group (as
// in matmul.wgsl's tex_sg), so each A texel is loaded once per group, not per lane.
@compute @workgroup_size(64)
fn main_tex(@builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(subgroup_invocation_id) sg_lane: u32,
            @builtin(subgroup_size) sg_size: u32) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    let n4 = p.n / 4u;
    let groups_n = (n4 + 8u * EC - 1u) / (8u * EC);
    let g = idx / 8u;
    let row0 = (g / groups_n) * ER;
    let c40 = ((g % groups_n) * 8u + idx % 8u) * EC;
    if (row0 >= p.experts * p.rows) {
        return;
    }
    let e = p.expert0 + row0 / p.rows;
    let a_row = p.expert0 * p.rows + row0;  // the A texture holds every expert's rows
    let my_row = a_row + (sg_lane % 8u) % ER;
    var acc: array<vec4<f32>, ER * EC>;
    for (var k4 = 0u; k4 < p.k / 4u; k4++) {
        let av = spread8(textureLoad(a_tex, vec2<u32>(k4, my_row), 0), sg_lane, sg_size);
        for (var h = 0u; h < EC; h++) {
            let c4 = min(c40 + h, n4 - 1u);
            let wr = e * p.k + 4u * k4;
            let w0 = textureLoad(w_tex, vec2<u32>(c4, wr), 0);
            let w1 = textureLoad(w_tex, vec2<u32>(c4, wr + 1u), 0);
            let w2 = textureLoad(w_tex, vec2<u32>(c4, wr + 2u), 0);
            let w3 = textureLoad(w_tex, vec2<u32>(c4, wr + 3u), 0);
            for (var i = 0u; i < ER; i++) {
                acc[i * EC + h] += av[i].x * w0 + av[i].y * w1 + av[i].z * w2 + av[i].w * w3;
            }
        }
    }
    var res = acc;
    for (var t = 0u; t < ER * EC; t++) {
        let i = t / EC;
        let h = t % EC;
        if (c40 + h < n4) {
            let v = res[t];
            for (var j = 0u; j < 4u; j++) {
                store(row0 + i, (c40 + h) * 4u + j, e, v[j]);
            }
        }
    }
}
#else
#ifdef TEX
// 4 rows (of one expert: rows per expert are a multiple of 4) x 8 columns per lane.
@compute @workgroup_size(64)
fn main_tex(@builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    let n4 = p.n / 4u;
    let tiles_n = (n4 + 1u) / 2u;
    let row0 = (idx / tiles_n) * 4u;
    let c40 = (idx % tiles_n) * 2u;
    if (row0 >= p.experts * p.rows) {
        return;
    }
    let e = p.expert0 + row0 / p.rows;
    let a_row = p.expert0 * p.rows + row0;  // the A texture holds every expert's rows
    var acc: array<vec4<f32>, 8>;
    for (var k4 = 0u; k4 < p.k / 4u; k4++) {
        var av: array<vec4<f32>, 4>;
        for (var i = 0u; i < 4u; i++) {
            av[i] = textureLoad(a_tex, vec2<u32>(k4, a_row + i), 0);
        }
        for (var h = 0u; h < 2u; h++) {
            let c4 = min(c40 + h, n4 - 1u);
            let wr = e * p.k + 4u * k4;
            let w0 = textureLoad(w_tex, vec2<u32>(c4, wr), 0);
            let w1 = textureLoad(w_tex, vec2<u32>(c4, wr + 1u), 0);
            let w2 = textureLoad(w_tex, vec2<u32>(c4, wr + 2u), 0);
            let w3 = textureLoad(w_tex, vec2<u32>(c4, wr + 3u), 0);
            for (var i = 0u; i < 4u; i++) {
                acc[i * 2u + h] += av[i].x * w0 + av[i].y * w1 + av[i].z * w2 + av[i].w * w3;
            }
        }
    }
    // Dynamic indices only into a copy, so `acc` stays in registers.
    var res = acc;
    for (var t = 0u; t < 8u; t++) {
        let i = t / 2u;
        let h = t % 2u;
        if (c40 + h < n4) {
            let v = res[t];
            for (var j = 0u; j < 4u; j++) {
                store(row0 + i, (c40 + h) * 4u + j, e, v[j]);
            }
        }
    }
}
#else
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    let tiles_n = (p.n + 3u) / 4u;
    let row0 = (idx / tiles_n) * 4u;
    let col0 = (idx % tiles_n) * 4u;
    if (row0 >= p.experts * p.rows) {
        return;
    }
    let e = p.expert0 + row0 / p.rows;
    let wbase = e * p.k * p.n;
    var cols: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) {
        cols[j] = min(col0 + j, p.n - 1u);
    }
    var acc: array<vec4<f32>, 4>;
    for (var kk = 0u; kk < p.k; kk++) {
        let wrow = wbase + kk * p.n;
        let wv = vec4<f32>(w[wrow + cols[0]], w[wrow + cols[1]], w[wrow + cols[2]], w[wrow + cols[3]]);
        for (var i = 0u; i < 4u; i++) {
            acc[i] += a[(row0 + i) * p.k + kk] * wv;
        }
    }
    var res = acc;  // dynamic indices only into the copy: `acc` stays in registers
    for (var i = 0u; i < 4u; i++) {
        let v = res[i];
        for (var j = 0u; j < 4u; j++) {
            if (col0 + j < p.n) {
                store(row0 + i, col0 + j, e, v[j]);
            }
        }
    }
}
#endif
#endif
#endif
