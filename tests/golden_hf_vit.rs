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

/// transformers ViTModel: both of its outputs, under its names.
#[test]
fn hf_vit_model_outputs_match_transformers() {
    let fx = fixtures().join("hf_vit");
    let dir = temp_dir("golden_hf_vit_model");
    let (model, out) = (dir.join("model.safetensors"), dir.join("out.safetensors"));
    let cfg = fx.join("model_outputs.config.json");
    let io = fx.join("model_outputs.io.safetensors");
    wgvision_ok(&["convert", "--from", "hf", "--config", cfg.to_str().unwrap(), fx.join("model_outputs.checkpoint.safetensors").to_str().unwrap(), "-o", model.to_str().unwrap()]);
    wgvision_ok(&["run", model.to_str().unwrap(), "--input", io.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    for (name, shape) in [("last_hidden_state", vec![2, 17, 48]), ("pooler_output", vec![2, 48])] {
        let (got_shape, got) = read_tensor(&out, name);
        let (want_shape, want) = read_tensor(&io, name);
        assert_eq!(got_shape, want_shape);
        assert_eq!(got_shape, shape);
        let e = rel_l2(&got, &want);
        eprintln!("ViTModel {name}: rel-L2 {e:.2e}");
        assert!(e <= 1e-4, "{name}: {e}");
    }
    // No logits to rank: --image says so and exits non-zero.
    let png = dir.join("img.png");
    image::RgbImage::from_fn(20, 20, |x, y| image::Rgb([x as u8 * 9, y as u8 * 9, 0])).save(&png).unwrap();
    let bad = wgvision(&["run", model.to_str().unwrap(), "--image", png.to_str().unwrap()]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no logits"), "{}", String::from_utf8_lossy(&bad.stderr));
}
