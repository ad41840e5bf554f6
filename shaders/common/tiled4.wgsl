// The GPU tiled matmul's main loop, shared by matmul and the expert matmul: a 64x64
// output tile per workgroup of 16x16 lanes, each lane a 4x4 register tile; per step of
// BK4 = 16 k, the workgroup stages A (k-major scalars, so no two lanes write parts of one
// vector) and W (vec4 columns) in workgroup memory with one vec4 load per lane each.
// The including shader provides `a4: array<vec4<f32>>` (A rows of K/4 vec4s), the
// element type `TW` (f32, or f16 with F16_MATH: f16 tiles, f16 products, f32 sums) and
// `w_vec4(idx)` (W as rows of N/4 vec4s).
const BK4: u32 = 16u;
var<workgroup> ta: array<TW, 1024>;       // [BK4][64 rows]
var<workgroup> tw: array<vec4<TW>, 256>;  // [BK4][64 cols / 4]

// Lane (lid.x, lid.y)'s 4 rows (row_base + 4 lid.y + i) x column quad c4_base + lid.x.
// A rows are a_row0 + r for r < rows; W rows are w_k0 + k; k and n4 are the matrix's K
// and N/4. Every lane of the workgroup must call it (barriers).
fn tiled4_acc(lid: vec3<u32>, row_base: u32, rows: u32, c4_base: u32, k: u32, n4: u32, a_row0: u32, w_k0: u32) -> array<vec4<f32>, 4> {
    let k4 = k / 4u;
    let t = lid.y * 16u + lid.x;
    // Loader roles: A row t / 4, k quad t % 4 (of the step's 4 quads); W k row t / 16,
    // column quad t % 16.
    let a_row = row_base + t / 4u;
    let a_q = t % 4u;
    let w_k = t / 16u;
    let w_c4 = c4_base + t % 16u;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < k; k0 += BK4) {
        let gq = k0 / 4u + a_q;
        var av = vec4<f32>(0.0);
        if (a_row < rows && gq < k4) {
            av = a4[(a_row0 + a_row) * k4 + gq];
        }
        // Transposed into k-major: element j of quad a_q is k = 4 a_q + j.
        for (var j = 0u; j < 4u; j++) {
            ta[(4u * a_q + j) * 64u + t / 4u] = TW(av[j]);
        }
        let gk = k0 + w_k;
        var wv = vec4<TW>(0.0);
        if (gk < k && w_c4 < n4) {
            wv = w_vec4((w_k0 + gk) * n4 + w_c4);
        }
        tw[w_k * 16u + t % 16u] = wv;
        workgroupBarrier();
        for (var kk = 0u; kk < BK4; kk++) {
            let ar = kk * 64u + 4u * lid.y;
            let a = vec4<TW>(ta[ar], ta[ar + 1u], ta[ar + 2u], ta[ar + 3u]);
            let w = tw[kk * 16u + lid.x];
            acc[0] += vec4<f32>(a.x * w);
            acc[1] += vec4<f32>(a.y * w);
            acc[2] += vec4<f32>(a.z * w);
            acc[3] += vec4<f32>(a.w * w);
        }
        workgroupBarrier();
    }
    return acc;
}
