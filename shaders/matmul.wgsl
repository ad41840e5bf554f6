// out[M,N] = act(A[M,K] * W[K,N] + bias[N]) + residual[M,N], accumulated in f32.
// Two entry points: `main_rows` for CPU adapters (each lane owns one column and TM rows;
// the A loads are uniform across lanes, so a SIMD CPU broadcasts them instead of gathering),
// `main_tiled` for GPUs (workgroup-shared 64x64 tiles, 4x4 outputs per thread).
#include "common/act.wgsl"
#include "common/index.wgsl"

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
}

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
#ifdef W_F16
@group(0) @binding(2) var<storage, read> w: array<u32>;
#else
@group(0) @binding(2) var<storage, read> w: array<f32>;
#endif
#ifdef BIAS
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
#ifdef RESIDUAL
@group(0) @binding(4) var<storage, read> residual: array<f32>;
#endif
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

#include "common/weights.wgsl"

fn epilogue(row: u32, col: u32, acc: f32) {
    var v = acc;
#ifdef BIAS
    v += bias[col];
#endif
    v = apply_act(p.act, v);
#ifdef RESIDUAL
    v += residual[row * p.n + col];
#endif
    out[row * p.n + col] = v;
}

override WG: u32 = 64u;

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
