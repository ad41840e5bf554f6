// Grouped expert matmul: out[e, r, :] = act(a[e, r, :] @ w[e] + bias[e]) for every expert
// in one dispatch. Each lane computes a 4x4 tile (4 rows of one expert, rows per expert
// being a multiple of 4, and 4 columns).
#include "common/act.wgsl"
#include "common/index.wgsl"

struct ExpertMatmulParams {
    experts: u32,
    rows: u32,
    k: u32,
    n: u32,
    act: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ExpertMatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
#ifdef BIAS
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

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
    let e = row0 / p.rows;
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
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if (col0 + j < p.n) {
                var v = acc[i][j];
#ifdef BIAS
                v += bias[e * p.n + col0 + j];
#endif
                out[(row0 + i) * p.n + col0 + j] = apply_act(p.act, v);
            }
        }
    }
}
