//! Golden tests: Swin checkpoints from timm and transformers (random weights, the peer's
//! own tensor names and config) converted by the real `wgvision convert` and run by the
//! real `wgvision run`, against the peer's float64 outputs. f32: relative L2 <= 1e-4;
//! f16 weight storage: <= 2e-2.
mod common;
use common::*;

#[test]
fn swin_f32_matches_timm_and_transformers() {
    golden_family("swin", "f32", 1e-4);
}

#[test]
fn swin_f16_weights_match_timm_and_transformers() {
    golden_family("swin", "f16", 2e-2);
}
