//! Golden tests: Swin checkpoints from timm and transformers (random weights, the peer's
//! own tensor names and config) converted by the real `wgvision convert` and run by the
//! real `wgvision run`, against the peer's float64 outputs. f32: relative L2 <= 1e-4;
//! f16 weight storage: <= 2e-2.
mod common;
use common::*;

#[test]
fn swin_f32_matches_timm_and_transformers() {
    let cases = cases("swin");
    assert!(cases.iter().any(|c| c.from == "hf") && cases.iter().any(|c| c.from == "timm"));
    for c in &cases {
        let e = golden_case("swin", &c.name, &convert_args("swin", c), "f32", &c.out_shape);
        eprintln!("{:<40} f32 rel-L2 {e:.2e}", c.name);
        assert!(e <= 1e-4, "{}: relative L2 error {e:e} > 1e-4", c.name);
    }
}

#[test]
fn swin_f16_weights_match_timm_and_transformers() {
    for c in &cases("swin") {
        let e = golden_case("swin", &c.name, &convert_args("swin", c), "f16", &c.out_shape);
        eprintln!("{:<40} f16 rel-L2 {e:.2e}", c.name);
        assert!(e <= 2e-2, "{}: relative L2 error {e:e} > 2e-2", c.name);
    }
}
