// Fused multi-head attention over a packed qkv tensor [B, N, 3*D] (columns ordered
// (3, heads, head_dim) as timm's qkv Linear emits them) -> out [B, N, D].
// One lane per query row, keys streamed in blocks with an online softmax: the scores
// never leave registers. K and V addresses are uniform across a workgroup, so SIMD
// CPU adapters broadcast them and GPUs serve them from cache. Optional masking (CLIP's
// text tower): `causal` keeps keys j <= i; with KEY_MASK, keys whose mask [B, N] entry is
// 0 (padding) get probability 0.
#include "common/index.wgsl"

struct AttentionParams {
    batch: u32,
    tokens: u32,
    heads: u32,
    head_dim: u32,
    scale: f32,
    causal: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
#ifdef KEY_MASK
@group(0) @binding(3) var<storage, read> key_mask: array<f32>;
#endif

fn key_allowed(b: u32, i: u32, j: u32) -> bool {
    var ok = p.causal == 0u || j <= i;
#ifdef KEY_MASK
    ok = ok && key_mask[b * p.tokens + j] != 0.0;
#endif
    return ok;
}

override WG: u32 = 32u;
const KB: u32 = 16u;  // keys per softmax block

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let q_blocks = (p.tokens + WG - 1u) / WG;
    let tile = linear_workgroup(wid, nwg);
    let bh = tile / q_blocks;
    if (bh >= p.batch * p.heads) {
        return;
    }
    let b = bh / p.heads;
    let h = bh % p.heads;
    let i = (tile % q_blocks) * WG + lid.x;
    let qi = min(i, p.tokens - 1u);
    let d_model = p.heads * p.head_dim;
    let row_stride = 3u * d_model;
    let batch_base = b * p.tokens * row_stride;
    let q_base = batch_base + qi * row_stride + h * p.head_dim;
    let k_off = batch_base + d_model + h * p.head_dim;
    let v_off = batch_base + 2u * d_model + h * p.head_dim;

    var q: array<f32, DH>;
    var acc: array<f32, DH>;
    for (var d = 0u; d < p.head_dim; d++) {
        q[d] = qkv[q_base + d] * p.scale;
        acc[d] = 0.0;
    }
    var m = -3.0e38;
    var l = 0.0;
    var s: array<f32, KB>;
    for (var j0 = 0u; j0 < p.tokens; j0 += KB) {
        let kb = min(KB, p.tokens - j0);
        var bmax = m;
        for (var jj = 0u; jj < kb; jj++) {
            let kr = k_off + (j0 + jj) * row_stride;
            var dot = 0.0;
            for (var d = 0u; d < p.head_dim; d++) {
                dot += q[d] * qkv[kr + d];
            }
            s[jj] = dot;
            if (key_allowed(b, qi, j0 + jj)) {
                bmax = max(bmax, dot);
            }
        }
        let corr = exp(m - bmax);
        l *= corr;
        for (var d = 0u; d < p.head_dim; d++) {
            acc[d] *= corr;
        }
        for (var jj = 0u; jj < kb; jj++) {
            let pj = select(0.0, exp(s[jj] - bmax), key_allowed(b, qi, j0 + jj));
            l += pj;
            let vr = v_off + (j0 + jj) * row_stride;
            for (var d = 0u; d < p.head_dim; d++) {
                acc[d] += pj * qkv[vr + d];
            }
        }
        m = bmax;
    }
    if (i < p.tokens) {
        let o = (b * p.tokens + i) * d_model + h * p.head_dim;
        let inv = 1.0 / l;
        for (var d = 0u; d < p.head_dim; d++) {
            out[o + d] = acc[d] * inv;
        }
    }
}
