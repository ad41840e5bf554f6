// Subgroup sharing for CPU-shaped kernels: lanes go in groups of 8 consecutive local ids
// that lie within one subgroup (the adapter's subgroups have at least 8 lanes); each lane
// loads one value and `spread8` hands the group's 8 values to every lane. With subgroups
// of exactly 8 (lavapipe: one SIMD register) the broadcasts have constant lane indices, a
// register extract and splat; wider subgroups shuffle within the group.
fn spread8(v: vec4<f32>, sg_lane: u32, sg_size: u32) -> array<vec4<f32>, 8> {
    var r: array<vec4<f32>, 8>;
    if (sg_size == 8u) {
        r[0] = subgroupBroadcast(v, 0u);
        r[1] = subgroupBroadcast(v, 1u);
        r[2] = subgroupBroadcast(v, 2u);
        r[3] = subgroupBroadcast(v, 3u);
        r[4] = subgroupBroadcast(v, 4u);
        r[5] = subgroupBroadcast(v, 5u);
        r[6] = subgroupBroadcast(v, 6u);
        r[7] = subgroupBroadcast(v, 7u);
    } else {
        let base = sg_lane - sg_lane % 8u;
        for (var i = 0u; i < 8u; i++) {
            r[i] = subgroupShuffle(v, base + i);
        }
    }
    return r;
}
