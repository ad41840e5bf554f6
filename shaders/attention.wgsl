// Fused multi-head attention over a packed qkv tensor [B, N, 3*D] (columns ordered
// (3, heads, head_dim) as a fused qkv projection emits them) -> out [B, N, D].
// One lane per query row, keys streamed in blocks with an online softmax: the scores
// never leave registers.
// Loop shape matters on llvmpipe/lavapipe (Mesa's gallivm): every loop of an invocation
// shares ONE limiter of 65535 back-edges (LP_MAX_TGSI_LOOP_ITERATIONS); once spent, every
// loop exits after its first pass and the result is silently wrong. So the per-key work
// (the head-dim dot product and the V update, over VEC4 lanes) and the keys of a block
// are loops with constant trip counts, which NIR unrolls: the only loop that iterates at
// run time is the one over key blocks, N / KB back-edges. K and V addresses are uniform across a workgroup, so SIMD
// CPU adapters broadcast them and GPUs serve them from cache. Optional masking (a text
// text tower): `causal` keeps keys j <= i; with KEY_MASK, keys whose mask [B, N] entry is
// 0 (padding) get probability 0.
#include "common/index.wgsl"
#ifdef SG
#include "common/subgroup.wgsl"
#endif

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
#ifdef VEC4
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
#else
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
#endif
#ifdef TEX_OUT
// SG only: the output as the next texture matmul's A texture (texel (c4, b*N + i)).
@group(0) @binding(2) var out_tex: texture_storage_2d<rgba32float, write>;
#else
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
#endif
#ifdef KEY_MASK
@group(0) @binding(3) var<storage, read> key_mask: array<f32>;
#endif

// Keys the causal mask allows. When the padding mask removes every one of them (an
// all-zero attention_mask), transformers' additive masks (finfo.min) swamp every score
// and its softmax is uniform over these keys; the kernels do the same instead of 0/0.
fn causal_ok(i: u32, j: u32) -> bool {
    return p.causal == 0u || j <= i;
}

fn key_allowed(b: u32, i: u32, j: u32) -> bool {
    var ok = p.causal == 0u || j <= i;
#ifdef KEY_MASK
    ok = ok && key_mask[b * p.tokens + j] != 0.0;
#endif
    return ok;
}

override WG: u32 = 32u;

// Which (batch, head, query) a lane computes: one workgroup per WG queries of one head.
struct Lane {
    b: u32,
    h: u32,
    i: u32,
}

fn query_lane(lid: vec3<u32>, wid: vec3<u32>, nwg: vec3<u32>) -> Lane {
    let q_blocks = (p.tokens + WG - 1u) / WG;
    let tile = linear_workgroup(wid, nwg);
    let bh = tile / q_blocks;
    return Lane(bh / p.heads, bh % p.heads, (tile % q_blocks) * WG + lid.x);
}

#ifdef VEC4
// DH4 vec4 lanes of head dim (the bucket; the head's own dim hd4 <= DH4 is a uniform)
// and KB keys per block are preprocessor constants so both loops unroll.
const DH4: u32 = DH / 4u;

#ifndef SG
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let lane = query_lane(lid, wid, nwg);
    if (lane.b >= p.batch) {
        return;
    }
    let b = lane.b;
    let h = lane.h;
    let i = lane.i;
    let qi = min(i, p.tokens - 1u);
    let hd4 = p.head_dim / 4u;
    let d_model4 = p.heads * hd4;
    let row4 = 3u * d_model4;
    let batch_base = b * p.tokens * row4;
    let q_base = batch_base + qi * row4 + h * hd4;
    let k_off = batch_base + d_model4 + h * hd4;
    let v_off = batch_base + 2u * d_model4 + h * hd4;

    // Lanes past the head's dim hold q = 0 and read a clamped (valid) column, so they
    // add nothing to the dot product; their acc lanes are never stored.
    var q: array<vec4<f32>, DH4>;
    var acc: array<vec4<f32>, DH4>;
    for (var d = 0u; d < DH4; d++) {
        q[d] = select(vec4<f32>(0.0), qkv[q_base + min(d, hd4 - 1u)] * p.scale, d < hd4);
        acc[d] = vec4<f32>(0.0);
    }
    var m = -3.0e38;
    var l = 0.0;
    for (var j0 = 0u; j0 < p.tokens; j0 += KB) {
        var s: array<f32, KB>;
        var ok: array<bool, KB>;
        var bmax = m;
        for (var jj = 0u; jj < KB; jj++) {
            let j = min(j0 + jj, p.tokens - 1u);
            let kr = k_off + j * row4;
            var dot4 = vec4<f32>(0.0);
            for (var d = 0u; d < DH4; d++) {
                dot4 += q[d] * qkv[kr + min(d, hd4 - 1u)];
            }
            let dot = dot4.x + dot4.y + dot4.z + dot4.w;
            s[jj] = dot;
            ok[jj] = j0 + jj < p.tokens && key_allowed(b, qi, j);
            if (ok[jj]) {
                bmax = max(bmax, dot);
            }
        }
        let corr = exp(m - bmax);
        l *= corr;
        for (var d = 0u; d < DH4; d++) {
            acc[d] *= corr;
        }
        for (var jj = 0u; jj < KB; jj++) {
            let pj = select(0.0, exp(s[jj] - bmax), ok[jj]);
            l += pj;
            let vr = v_off + min(j0 + jj, p.tokens - 1u) * row4;
            for (var d = 0u; d < DH4; d++) {
                acc[d] += pj * qkv[vr + min(d, hd4 - 1u)];
            }
        }
        m = bmax;
    }
    if (l == 0.0) {
        for (var j0 = 0u; j0 < p.tokens; j0 += KB) {
            for (var jj = 0u; jj < KB; jj++) {
                let ok = j0 + jj < p.tokens && causal_ok(qi, j0 + jj);
                let pj = select(0.0, 1.0, ok);
                l += pj;
                let vr = v_off + min(j0 + jj, p.tokens - 1u) * row4;
                for (var d = 0u; d < DH4; d++) {
                    acc[d] += pj * qkv[vr + min(d, hd4 - 1u)];
                }
            }
        }
    }
    if (i < p.tokens) {
        let o = (b * p.tokens + i) * p.heads * p.head_dim + h * p.head_dim;
        let inv = 1.0 / l;
        for (var d = 0u; d < DH4; d++) {
            if (d < hd4) {
                let v = acc[d] * inv;
                out[o + 4u * d] = v.x;
                out[o + 4u * d + 1u] = v.y;
                out[o + 4u * d + 2u] = v.z;
                out[o + 4u * d + 3u] = v.w;
            }
        }
    }
}
#endif
#ifdef FLASH
// FLASH (GPUs): the workgroup's WG queries share each tile of KT keys: its lanes load the
// tile's K and V rows into workgroup memory together (one vec4 each per step), then every
// lane scores its query against the tile from there, with the online softmax as above.
const KT: u32 = 16u;
var<workgroup> kt: array<vec4<f32>, KT * DH4>;
var<workgroup> vt: array<vec4<f32>, KT * DH4>;

@compute @workgroup_size(WG)
fn main_flash(@builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let lane = query_lane(lid, wid, nwg);
    if (lane.b >= p.batch) {
        return;
    }
    let b = lane.b;
    let h = lane.h;
    let i = lane.i;
    let qi = min(i, p.tokens - 1u);
    let hd4 = p.head_dim / 4u;
    let d_model4 = p.heads * hd4;
    let row4 = 3u * d_model4;
    let batch_base = b * p.tokens * row4;
    let q_base = batch_base + qi * row4 + h * hd4;
    let k_off = batch_base + d_model4 + h * hd4;
    let v_off = batch_base + 2u * d_model4 + h * hd4;

    var q: array<vec4<f32>, DH4>;
    var acc: array<vec4<f32>, DH4>;
    for (var d = 0u; d < DH4; d++) {
        q[d] = select(vec4<f32>(0.0), qkv[q_base + min(d, hd4 - 1u)] * p.scale, d < hd4);
    }
    var m = -3.0e38;
    var l = 0.0;
    for (var j0 = 0u; j0 < p.tokens; j0 += KT) {
        for (var e = lid.x; e < KT * DH4; e += WG) {
            let key = min(j0 + e / DH4, p.tokens - 1u) * row4 + min(e % DH4, hd4 - 1u);
            kt[e] = qkv[k_off + key];
            vt[e] = qkv[v_off + key];
        }
        workgroupBarrier();
        var s: array<f32, KT>;
        var ok: array<bool, KT>;
        var bmax = m;
        for (var jj = 0u; jj < KT; jj++) {
            var dot4 = vec4<f32>(0.0);
            for (var d = 0u; d < DH4; d++) {
                dot4 += q[d] * kt[jj * DH4 + d];
            }
            s[jj] = dot4.x + dot4.y + dot4.z + dot4.w;
            ok[jj] = j0 + jj < p.tokens && key_allowed(b, qi, min(j0 + jj, p.tokens - 1u));
            if (ok[jj]) {
                bmax = max(bmax, s[jj]);
            }
        }
        let corr = exp(m - bmax);
        l *= corr;
        for (var d = 0u; d < DH4; d++) {
            acc[d] *= corr;
        }
        for (var jj = 0u; jj < KT; jj++) {
            let pj = select(0.0, exp(s[jj] - bmax), ok[jj]);
            l += pj;
            for (var d = 0u; d < DH4; d++) {
                acc[d] += pj * vt[jj * DH4 + d];
            }
        }
        m = bmax;
        workgroupBarrier();
    }
    if (l == 0.0) {
        // Every key masked: uniform over the causal keys (see causal_ok).
        for (var j0 = 0u; j0 < p.tokens; j0 += KT) {
            for (var jj = 0u; jj < KT; jj++) {
                let pj = select(0.0, 1.0, j0 + jj < p.tokens && causal_ok(qi, j0 + jj));
                l += pj;
                let vr = v_off + min(j0 + jj, p.tokens - 1u) * row4;
                for (var d = 0u; d < DH4; d++) {
                    acc[d] += pj * qkv[vr + min(d, hd4 - 1u)];
                }
            }
        }
    }
    if (i < p.tokens) {
        let o = (b * p.tokens + i) * p.heads * p.head_dim + h * p.head_dim;
        let inv = 1.0 / l;
        for (var d = 0u; d < DH4; d++) {
            if (d < hd4) {
                let v = acc[d] * inv;
                out[o + 4u * d] = v.x;
                out[o + 4u * d + 1u] = v.y;
                out[o + 4u * d + 2u] = v.z;
                out[o + 4u * d + 3u] = v.w;
            }
        }
    }
}
#endif
#ifdef SG
// SG (subgroups of at least 8 lanes): the 8 lanes of a group are 8 consecutive queries of
// one head; per block of 8 keys, lane j loads key (and value) row j0 + j once and
// `spread8` shares it, so each K/V row is loaded once per 8 queries (on lavapipe a
// storage load with one address for all lanes is still a per-lane loop).
@compute @workgroup_size(WG)
fn main_sg(@builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(subgroup_invocation_id) sg_lane: u32,
           @builtin(subgroup_size) sg_size: u32) {
    let lane = query_lane(lid, wid, nwg);
    if (lane.b >= p.batch) {
        return;
    }
    let b = lane.b;
    let h = lane.h;
    let i = lane.i;
    let qi = min(i, p.tokens - 1u);
    let hd4 = p.head_dim / 4u;
    let d_model4 = p.heads * hd4;
    let row4 = 3u * d_model4;
    let batch_base = b * p.tokens * row4;
    let q_base = batch_base + qi * row4 + h * hd4;
    let k_off = batch_base + d_model4 + h * hd4;
    let v_off = batch_base + 2u * d_model4 + h * hd4;
    let g = sg_lane % 8u;

    var q: array<vec4<f32>, DH4>;
    var acc: array<vec4<f32>, DH4>;
    for (var d = 0u; d < DH4; d++) {
        q[d] = select(vec4<f32>(0.0), qkv[q_base + min(d, hd4 - 1u)] * p.scale, d < hd4);
        acc[d] = vec4<f32>(0.0);
    }
    var m = -3.0e38;
    var l = 0.0;
    for (var j0 = 0u; j0 < p.tokens; j0 += 8u) {
        let my_key = min(j0 + g, p.tokens - 1u) * row4;
        var dot4: array<vec4<f32>, 8>;
        for (var d = 0u; d < DH4; d++) {
            let k = spread8(qkv[k_off + my_key + min(d, hd4 - 1u)], sg_lane, sg_size);
            for (var jj = 0u; jj < 8u; jj++) {
                dot4[jj] += q[d] * k[jj];
            }
        }
        var s: array<f32, 8>;
        var ok: array<bool, 8>;
        var bmax = m;
        for (var jj = 0u; jj < 8u; jj++) {
            s[jj] = dot4[jj].x + dot4[jj].y + dot4[jj].z + dot4[jj].w;
            ok[jj] = j0 + jj < p.tokens && key_allowed(b, qi, min(j0 + jj, p.tokens - 1u));
            if (ok[jj]) {
                bmax = max(bmax, s[jj]);
            }
        }
        let corr = exp(m - bmax);
        l *= corr;
        var pj: array<f32, 8>;
        for (var jj = 0u; jj < 8u; jj++) {
            pj[jj] = select(0.0, exp(s[jj] - bmax), ok[jj]);
            l += pj[jj];
        }
        for (var d = 0u; d < DH4; d++) {
            let v = spread8(qkv[v_off + my_key + min(d, hd4 - 1u)], sg_lane, sg_size);
            var a = acc[d] * corr;
            for (var jj = 0u; jj < 8u; jj++) {
                a += pj[jj] * v[jj];
            }
            acc[d] = a;
        }
        m = bmax;
    }
    if (l == 0.0) {
        // Every key masked: uniform over the keys the causal mask allows (see causal_ok).
        // Uniform across the group only when all 8 queries are fully masked, so no
        // subgroup operations here.
        for (var j0 = 0u; j0 < p.tokens; j0 += KB) {
            for (var jj = 0u; jj < KB; jj++) {
                let ok = j0 + jj < p.tokens && causal_ok(qi, j0 + jj);
                let pj = select(0.0, 1.0, ok);
                l += pj;
                let vr = v_off + min(j0 + jj, p.tokens - 1u) * row4;
                for (var d = 0u; d < DH4; d++) {
                    acc[d] += pj * qkv[vr + min(d, hd4 - 1u)];
                }
            }
        }
    }
    if (i < p.tokens) {
        let inv = 1.0 / l;
#ifdef TEX_OUT
        for (var d = 0u; d < DH4; d++) {
            if (d < hd4) {
                textureStore(out_tex, vec2<u32>(h * hd4 + d, b * p.tokens + i), acc[d] * inv);
            }
        }
#else
        let o = (b * p.tokens + i) * p.heads * p.head_dim + h * p.head_dim;
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
#else
// Scalar fallback for head dims that are not a multiple of 4. Its head-dim loops run at
// run time, so ops/attention.rs refuses shapes that would spend lavapipe's loop limiter.
const KB: u32 = 16u;  // keys per softmax block

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let lane = query_lane(lid, wid, nwg);
    if (lane.b >= p.batch) {
        return;
    }
    let b = lane.b;
    let h = lane.h;
    let i = lane.i;
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
    if (l == 0.0) {
        for (var j = 0u; j < p.tokens; j++) {
            if (causal_ok(qi, j)) {
                l += 1.0;
                let vr = v_off + j * row_stride;
                for (var d = 0u; d < p.head_dim; d++) {
                    acc[d] += qkv[vr + d];
                }
            }
        }
    }
    if (i < p.tokens) {
        let o = (b * p.tokens + i) * d_model + h * p.head_dim;
        let inv = 1.0 / l;
        for (var d = 0u; d < p.head_dim; d++) {
            out[o + d] = acc[d] * inv;
        }
    }
}
#endif
