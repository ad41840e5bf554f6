//! Golden tests: transformers ViTForImageClassification checkpoints (random weights, the
//! peer's own tensor names and config.json, including 224 px / 16 px patches = 197
//! tokens) converted by the real `wgvision convert --from hf` and run by the real
//! `wgvision run`, against transformers' float64 logits. f32: relative L2 <= 1e-4; f16
//! weight storage: <= 2e-2.
mod common;
use common::*;

#[test]
fn hf_vit_f32_matches_transformers() {
    golden_family("hf_vit", "f32", 1e-4);
}

#[test]
fn hf_vit_f16_weights_match_transformers() {
    golden_family("hf_vit", "f16", 2e-2);
}
