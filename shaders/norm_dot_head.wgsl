// Normalized-dot class head: logits[b, p, q] = (<img/(|img| + ei), t/(|t| + et)> + shift)
// * (elu(scale) + 1), with t = text[b*Q + q] / |text[b*Q + q]| and shift, scale per patch;
// padding queries (first token id 0) get float32's minimum.
#include "common/index.wgsl"

struct NormDotHeadParams {
    batch: u32,
    patches: u32,
    queries: u32,
    dim: u32,
    seq: u32,
    image_eps: f32,
    text_eps: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: NormDotHeadParams;
@group(0) @binding(1) var<storage, read> img: array<f32>;
@group(0) @binding(2) var<storage, read> shift_scale: array<f32>;
@group(0) @binding(3) var<storage, read> text: array<f32>;
@group(0) @binding(4) var<storage, read> ids: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear_workgroup(wid, nwg) * 64u + lid.x;
    if (idx >= p.batch * p.patches * p.queries) {
        return;
    }
    let q = idx % p.queries;
    let bp = idx / p.queries;
    let b = bp / p.patches;
    let qi = b * p.queries + q;
    if (ids[qi * p.seq] <= 0.0) {
        out[idx] = -3.4028234663852886e38;
        return;
    }
    var dot = 0.0;
    var ni = 0.0;
    var nt = 0.0;
    for (var c = 0u; c < p.dim; c++) {
        let a = img[bp * p.dim + c];
        let t = text[qi * p.dim + c];
        dot += a * t;
        ni += a * a;
        nt += t * t;
    }
    let cos = dot / ((sqrt(ni) + p.image_eps) * sqrt(nt) * (1.0 + p.text_eps));
    let scale = shift_scale[bp * 2u + 1u];
    let gain = select(exp(scale) - 1.0, scale, scale > 0.0) + 1.0;
    out[idx] = (cos + shift_scale[bp * 2u]) * gain;
}
