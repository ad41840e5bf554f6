// Weight element loads. With W_F16 the weight buffer holds f16 pairs packed in u32 words,
// unpacked with unpack2x16float so f16 storage works without SHADER_F16.
#ifdef W_F16
fn load_w(i: u32) -> f32 {
    let pair = unpack2x16float(w[i >> 1u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}
#else
fn load_w(i: u32) -> f32 {
    return w[i];
}
#endif
