#ifdef F16_MATH
enable f16;
#endif
// out[M,N] = act(A[M,K] * W[K,N] + bias[N]) + residual[M,N], accumulated in f32.
// Entry points (chosen per adapter in ops/matmul.rs): `main_vec4` for CPU adapters when K
// and N are multiples of 4 (4x4 register tile per lane, vec4 loads; fastest measured on
// lavapipe), `main_cols8` for CPU adapters otherwise (uniform weight loads), `main_rows`
// (one column, TM rows per lane), `main_tiled` for GPUs (workgroup-shared 64x64 tiles),
// `main_tex` (TEX) for CPU adapters: A and W read through rgba32float textures, 8x8 tile
// per lane (16x4 with SG: A shared through subgroup broadcasts); lavapipe fetches texels
// with gathers where every storage-buffer load is a per-lane loop, so this is ~6x the vec4
// kernel there.
#include "common/act.wgsl"
#include "common/index.wgsl"

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    a_row0: u32,  // TEX: the texture row of this dispatch's first row (row ranges of large outputs)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: MatmulParams;
#ifdef TEX
// A: K/4 x M texels (texel (k4, row) = A[row, 4k4..4k4+4]); W: N/4 x K texels.
@group(0) @binding(1) var a_tex: texture_2d<f32>;
@group(0) @binding(2) var w_tex: texture_2d<f32>;
#else
#ifdef VEC4
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
#ifdef F16_MATH
@group(0) @binding(2) var<storage, read> w4h: array<vec4<f16>>;
#else
#ifdef W_F16
@group(0) @binding(2) var<storage, read> w2: array<vec2<u32>>;
#else
@group(0) @binding(2) var<storage, read> w4: array<vec4<f32>>;
#endif
#endif
#else
@group(0) @binding(1) var<storage, read> a: array<f32>;
#ifdef W_F16
@group(0) @binding(2) var<storage, read> w: array<u32>;
#else
@group(0) @binding(2) var<storage, read> w: array<f32>;
#endif
#endif
#endif
#ifdef BIAS
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
#ifdef RESIDUAL
@group(0) @binding(4) var<storage, read> residual: array<f32>;
#endif
#ifdef TEX_OUT
// The output as the next texture matmul's A texture (texel (c4, row) = out[row, 4c4..]).
@group(0) @binding(5) var out_tex: texture_storage_2d<rgba32float, write>;
#else
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
#endif

#ifndef VEC4
#ifndef TEX
#include "common/weights.wgsl"
#endif
#endif

#ifdef VEC4
// vec4 weight loads: W [K, N/4] as f32, packed f16 pairs (W_F16, widened), or f16
// (F16_MATH: the adapter has SHADER_F16).
#ifdef F16_MATH
alias TW = f16;
#else
alias TW = f32;
#endif
fn w_vec4(idx: u32) -> vec4<TW> {
#ifdef F16_MATH
    return w4h[idx];
#else
#ifdef W_F16
    let q = w2[idx];
    return vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y));
#else
    return w4[idx];
#endif
#endif
}

#endif
fn finish(row: u32, col: u32, acc: f32) -> f32 {
    var v = acc;
#ifdef BIAS
    v += bias[col];
#endif
    v = apply_act(p.act, v);
#ifdef RESIDUAL
    v += residual[row * p.n + col];
#endif
    return v;
}

#ifndef TEX_OUT
fn epilogue(row: u32, col: u32, acc: f32) {
    out[row * p.n + col] = finish(row, col, acc);
}
#endif

override WG: u32 = 64u;
override TR: u32 = 1u;  // rows per lane in main_cols8 (1 or 2)

#ifdef TILE
// A texel (4 consecutive k of one row) and a W texel (4 consecutive columns of one k
// row): from textures (TEX, CPU adapters) or vec4 storage loads (GPUs).
fn tile_a(k4: u32, row: u32) -> vec4<f32> {
#ifdef TEX
    return textureLoad(a_tex, vec2<u32>(k4, p.a_row0 + row), 0);
#else
    return a4[row * (p.k / 4u) + k4];
#endif
}

fn tile_w(k: u32, c4: u32) -> vec4<f32> {
#ifdef TEX
    return textureLoad(w_tex, vec2<u32>(c4, k), 0);
#else
    return vec4<f32>(w_vec4(k * (p.n / 4u) + c4));
#endif
}

// TEX_ROWS x 4*TEX_COLS4 outputs per lane (value defines). Lanes go in groups of 8 that
// share one row block: lane j of group g covers column texels (cg*8 + j)*TEX_COLS4.. of
// the group's block of 32*TEX_COLS4 columns. With SG (subgroups of at least 8 lanes,
// consecutive local ids), lane j loads the A texel of rows j, j+8, .. once and subgroup
// broadcasts hand it to the other 7 lanes: on lavapipe, where a subgroup is one SIMD
// register, that is one gathered load where there were 8 (44 against 29 GFLOP/s at 1024^3).
@compute @workgroup_size(WG)
fn main_tex(@builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(workgroup_id) wid: vec3<u32>,
#ifdef SG
            @builtin(subgroup_invocation_id) sg_lane: u32,
            @builtin(subgroup_size) sg_size: u32,
#endif
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let n4 = p.n / 4u;
    let groups_n = (n4 + 8u * TEX_COLS4 - 1u) / (8u * TEX_COLS4);
    let idx = linear_workgroup(wid, nwg) * WG + lid.x;
    let g = idx / 8u;
    let row0 = (g / groups_n) * TEX_ROWS;
    let c40 = ((g % groups_n) * 8u + idx % 8u) * TEX_COLS4;
    // A whole group leaves together (row0 is the group's), so the broadcasts below only
    // read lanes that are still running.
    if (row0 >= p.m) {
        return;
    }
    var acc: array<vec4<f32>, TEX_ROWS * TEX_COLS4>;
#ifdef SG
    let lane = sg_lane % 8u;
    let base = sg_lane - lane;
#endif
    for (var k4 = 0u; k4 < p.k / 4u; k4++) {
        var av: array<vec4<f32>, TEX_ROWS>;
#ifdef SG
        for (var r = 0u; r < TEX_ROWS / 8u; r++) {
            let mine = tile_a(k4, min(row0 + 8u * r + lane, p.m - 1u));
            if (sg_size == 8u) {
                // Constant lane indices: a register extract and splat on lavapipe.
                av[8u * r] = subgroupBroadcast(mine, 0u);
                av[8u * r + 1u] = subgroupBroadcast(mine, 1u);
                av[8u * r + 2u] = subgroupBroadcast(mine, 2u);
                av[8u * r + 3u] = subgroupBroadcast(mine, 3u);
                av[8u * r + 4u] = subgroupBroadcast(mine, 4u);
                av[8u * r + 5u] = subgroupBroadcast(mine, 5u);
                av[8u * r + 6u] = subgroupBroadcast(mine, 6u);
                av[8u * r + 7u] = subgroupBroadcast(mine, 7u);
            } else {
                for (var i = 0u; i < 8u; i++) {
                    av[8u * r + i] = subgroupShuffle(mine, base + i);
                }
            }
        }
#else
        for (var i = 0u; i < TEX_ROWS; i++) {
            av[i] = tile_a(k4, min(row0 + i, p.m - 1u));
        }
#endif
        for (var h = 0u; h < TEX_COLS4; h++) {
            let c4 = min(c40 + h, n4 - 1u);
            let w0 = tile_w(4u * k4, c4);
            let w1 = tile_w(4u * k4 + 1u, c4);
            let w2 = tile_w(4u * k4 + 2u, c4);
            let w3 = tile_w(4u * k4 + 3u, c4);
            for (var i = 0u; i < TEX_ROWS; i++) {
                acc[i * TEX_COLS4 + h] += av[i].x * w0 + av[i].y * w1 + av[i].z * w2 + av[i].w * w3;
            }
        }
    }
    // The epilogue indexes its copy, so `acc` keeps only constant indices (after
    // unrolling) and stays in registers through the k loop.
    var res = acc;
    for (var t = 0u; t < TEX_ROWS * TEX_COLS4; t++) {
        let i = t / TEX_COLS4;
        let h = t % TEX_COLS4;
        if (row0 + i < p.m && c40 + h < n4) {
            let v = res[t];
            let col = (c40 + h) * 4u;
#ifdef TEX_OUT
            let y = vec4<f32>(finish(row0 + i, col, v.x), finish(row0 + i, col + 1u, v.y), finish(row0 + i, col + 2u, v.z), finish(row0 + i, col + 3u, v.w));
            textureStore(out_tex, vec2<u32>(c40 + h, p.a_row0 + row0 + i), y);
#else
            for (var j = 0u; j < 4u; j++) {
                epilogue(row0 + i, col + j, v[j]);
            }
#endif
        }
    }
}
#else
#ifndef VEC4
@compute @workgroup_size(WG)
fn main_rows(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let tiles_n = (p.n + WG - 1u) / WG;
    let tile = linear_workgroup(wid, nwg);
    let tm = tile / tiles_n;
    let row0 = tm * TM;
    if (row0 >= p.m) {
        return;
    }
    let col = (tile % tiles_n) * WG + lid.x;
    let c = min(col, p.n - 1u);
    var rowoff: array<u32, TM>;
    for (var i = 0u; i < TM; i++) {
        rowoff[i] = min(row0 + i, p.m - 1u) * p.k;
    }
    var acc: array<f32, TM>;
    var k = 0u;
    for (; k + 4u <= p.k; k += 4u) {
        let w0 = load_w(k * p.n + c);
        let w1 = load_w((k + 1u) * p.n + c);
        let w2 = load_w((k + 2u) * p.n + c);
        let w3 = load_w((k + 3u) * p.n + c);
        for (var i = 0u; i < TM; i++) {
            let r = rowoff[i] + k;
            acc[i] += a[r] * w0 + a[r + 1u] * w1 + a[r + 2u] * w2 + a[r + 3u] * w3;
        }
    }
    for (; k < p.k; k++) {
        let wk = load_w(k * p.n + c);
        for (var i = 0u; i < TM; i++) {
            acc[i] += a[rowoff[i] + k] * wk;
        }
    }
    if (col < p.n) {
        for (var i = 0u; i < TM; i++) {
            if (row0 + i < p.m) {
                epilogue(row0 + i, col, acc[i]);
            }
        }
    }
}

// CPU-adapter variant: each lane owns TR rows and the workgroup shares one 8-column
// block, so the weight loads are uniform across lanes (one scalar load broadcast to the
// SIMD register) and only the A loads differ per lane.
@compute @workgroup_size(WG)
fn main_cols8(@builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let col_blocks = (p.n + 7u) / 8u;
    let tile = linear_workgroup(wid, nwg);
    let cb = tile % col_blocks;
    let rb = tile / col_blocks;
    let row0 = (rb * WG + lid.x) * TR;
    if (rb * WG * TR >= p.m) {
        return;
    }
    let c0 = cb * 8u;
    // Columns past N read column N-1 (uniform clamp) and are not stored.
    var cols: array<u32, 8>;
    for (var j = 0u; j < 8u; j++) {
        cols[j] = min(c0 + j, p.n - 1u);
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let ra = min(row0, p.m - 1u) * p.k;
    let rb2 = min(row0 + 1u, p.m - 1u) * p.k;
    let full = c0 + 8u <= p.n;
    for (var k = 0u; k < p.k; k++) {
        let base = k * p.n;
        var w0: vec4<f32>;
        var w1: vec4<f32>;
        if (full) {
            w0 = vec4<f32>(load_w(base + c0), load_w(base + c0 + 1u), load_w(base + c0 + 2u), load_w(base + c0 + 3u));
            w1 = vec4<f32>(load_w(base + c0 + 4u), load_w(base + c0 + 5u), load_w(base + c0 + 6u), load_w(base + c0 + 7u));
        } else {
            w0 = vec4<f32>(load_w(base + cols[0]), load_w(base + cols[1]), load_w(base + cols[2]), load_w(base + cols[3]));
            w1 = vec4<f32>(load_w(base + cols[4]), load_w(base + cols[5]), load_w(base + cols[6]), load_w(base + cols[7]));
        }
        let x0 = a[ra + k];
        acc0 += x0 * w0;
        acc1 += x0 * w1;
        if (TR == 2u) {
            let x1 = a[rb2 + k];
            acc2 += x1 * w0;
            acc3 += x1 * w1;
        }
    }
    for (var j = 0u; j < 4u; j++) {
        if (c0 + j < p.n) {
            if (row0 < p.m) { epilogue(row0, c0 + j, acc0[j]); }
            if (TR == 2u && row0 + 1u < p.m) { epilogue(row0 + 1u, c0 + j, acc2[j]); }
        }
        if (c0 + 4u + j < p.n) {
            if (row0 < p.m) { epilogue(row0, c0 + 4u + j, acc1[j]); }
            if (TR == 2u && row0 + 1u < p.m) { epilogue(row0 + 1u, c0 + 4u + j, acc3[j]); }
        }
    }
}

const BT: u32 = 64u;   // output tile edge
const BK: u32 = 16u;   // k depth per shared tile
var<workgroup> sa: array<f32, 1024>;  // BT x BK, k-major
var<workgroup> sw: array<f32, 1024>;  // BK x BT

@compute @workgroup_size(16, 16)
fn main_tiled(@builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let tiles_n = (p.n + BT - 1u) / BT;
    let tile = linear_workgroup(wid, nwg);
    let row_base = (tile / tiles_n) * BT;
    let col_base = (tile % tiles_n) * BT;
    if (row_base >= p.m) {
        return;
    }
    let t = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // 256 threads load 1024 elements of each tile, zero-filled outside the matrix.
        for (var e = 0u; e < 4u; e++) {
            let idx = t + e * 256u;
            let ar = idx / BK;
            let ak = idx % BK;
            let grow = row_base + ar;
            let gk = k0 + ak;
            var av = 0.0;
            if (grow < p.m && gk < p.k) {
                av = a[grow * p.k + gk];
            }
            sa[ak * BT + ar] = av;
            let wk = idx / BT;
            let wc = idx % BT;
            let gk2 = k0 + wk;
            let gc = col_base + wc;
            var wv = 0.0;
            if (gk2 < p.k && gc < p.n) {
                wv = load_w(gk2 * p.n + gc);
            }
            sw[wk * BT + wc] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var av4: array<f32, 4>;
            var wv4: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av4[i] = sa[kk * BT + lid.y * 4u + i];
                wv4[i] = sw[kk * BT + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] += av4[i] * wv4[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            let row = row_base + lid.y * 4u + i;
            let col = col_base + lid.x * 4u + j;
            if (row < p.m && col < p.n) {
                epilogue(row, col, acc[i * 4u + j]);
            }
        }
    }
}
#else
#ifdef TILED4
// GPUs, K and N multiples of 4: common/tiled4.wgsl's 64x64 workgroup tile. W_F16 reads
// packed f16 (widened, f32 arithmetic); F16_MATH (the adapter has SHADER_F16) keeps both
// tiles in f16 and multiplies in f16, accumulating in f32.
#include "common/tiled4.wgsl"

@compute @workgroup_size(16, 16)
fn main_tiled4(@builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let n4 = p.n / 4u;
    let tiles_n = (n4 + 15u) / 16u;
    let tile = linear_workgroup(wid, nwg);
    let row_base = (tile / tiles_n) * 64u;
    let c4_base = (tile % tiles_n) * 16u;
    if (row_base >= p.m) {
        return;
    }
    let acc = tiled4_acc(lid, row_base, p.m, c4_base, p.k, n4, 0u, 0u);
    let c4 = c4_base + lid.x;
    if (c4 >= n4) {
        return;
    }
    var res = acc;
    for (var i = 0u; i < 4u; i++) {
        let row = row_base + lid.y * 4u + i;
        if (row < p.m) {
            let v = res[i];
            for (var j = 0u; j < 4u; j++) {
                epilogue(row, 4u * c4 + j, v[j]);
            }
        }
    }
}
#else
// 4x4 outputs per lane, both operands read as vec4 (K and N multiples of 4): 8 vector
// loads feed 64 multiply-adds, the best load/FMA ratio without shared memory.
@compute @workgroup_size(WG)
fn main_vec4(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let n4 = p.n / 4u;
    let k4 = p.k / 4u;
    let idx = linear_workgroup(wid, nwg) * WG + lid.x;
    let cb = idx % n4;
    let rb = idx / n4;
    let row0 = rb * 4u;
    if (row0 >= p.m) {
        return;
    }
    var r: array<u32, 4>;
    let r0 = row0 * k4;
    let r1 = min(row0 + 1u, p.m - 1u) * k4;
    let r2 = min(row0 + 2u, p.m - 1u) * k4;
    let r3 = min(row0 + 3u, p.m - 1u) * k4;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    for (var k = 0u; k < k4; k++) {
        let wb = k * 4u * n4 + cb;
        let w0 = w4[wb];
        let w1 = w4[wb + n4];
        let w2 = w4[wb + 2u * n4];
        let w3 = w4[wb + 3u * n4];
        let a0 = a4[r0 + k];
        let a1 = a4[r1 + k];
        let a2 = a4[r2 + k];
        let a3 = a4[r3 + k];
        c0 += a0.x * w0 + a0.y * w1 + a0.z * w2 + a0.w * w3;
        c1 += a1.x * w0 + a1.y * w1 + a1.z * w2 + a1.w * w3;
        c2 += a2.x * w0 + a2.y * w1 + a2.z * w2 + a2.w * w3;
        c3 += a3.x * w0 + a3.y * w1 + a3.z * w2 + a3.w * w3;
    }
    let col = cb * 4u;
    for (var j = 0u; j < 4u; j++) {
        epilogue(row0, col + j, c0[j]);
        if (row0 + 1u < p.m) { epilogue(row0 + 1u, col + j, c1[j]); }
        if (row0 + 2u < p.m) { epilogue(row0 + 2u, col + j, c2[j]); }
        if (row0 + 3u < p.m) { epilogue(row0 + 3u, col + j, c3[j]); }
    }
}
#endif
#endif
#endif
