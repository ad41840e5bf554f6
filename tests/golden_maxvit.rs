//! Golden tests: timm MaxViT checkpoints (tf, rw and rmlp families; random weights with
//! BatchNorm statistics, timm's own tensor names) converted by the real `wgvision
//! convert` and run by the real `wgvision run`, against timm's float64 outputs.
//! f32: relative L2 <= 1e-4; f16 weight storage: <= 2e-2.
mod common;
use common::*;

#[test]
fn maxvit_f32_matches_timm() {
    let cases = cases("maxvit");
    assert!(cases.len() >= 5);
    for c in &cases {
        let e = golden_case("maxvit", &c.name, &convert_args("maxvit", c), "f32", &c.out_shape);
        eprintln!("{:<40} f32 rel-L2 {e:.2e}", c.name);
        assert!(e <= 1e-4, "{}: relative L2 error {e:e} > 1e-4", c.name);
    }
}

#[test]
fn maxvit_f16_weights_match_timm() {
    for c in &cases("maxvit") {
        let e = golden_case("maxvit", &c.name, &convert_args("maxvit", c), "f16", &c.out_shape);
        eprintln!("{:<40} f16 rel-L2 {e:.2e}", c.name);
        assert!(e <= 2e-2, "{}: relative L2 error {e:e} > 2e-2", c.name);
    }
}
