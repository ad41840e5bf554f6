//! Golden tests: timm MaxViT checkpoints (tf, rw and rmlp families; random weights with
//! BatchNorm statistics, timm's own tensor names) converted by the real `wgvision
//! convert` and run by the real `wgvision run`, against timm's float64 outputs.
//! f32: relative L2 <= 1e-4; f16 weight storage: <= 2e-2.
mod common;
use common::*;

#[test]
fn maxvit_f32_matches_timm() {
    golden_family("maxvit", "f32", 1e-4);
}

#[test]
fn maxvit_f16_weights_match_timm() {
    golden_family("maxvit", "f16", 2e-2);
}
