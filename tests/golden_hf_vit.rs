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

/// The base models (ViTModel, DeiTModel, Dinov2Model, Dinov2WithRegistersModel): both
/// outputs, under transformers' names. The DINOv2 ones run at 224 px with a position
/// embedding trained at 518 (resampled at conversion).
#[test]
fn hf_vit_model_outputs_match_transformers() {
    let fx = fixtures().join("hf_vit");
    let dir = temp_dir("golden_hf_vit_model");
    let cases = [
        ("model_outputs", vec![2, 17, 48]),
        ("deit_model_outputs", vec![2, 18, 48]),
        ("dinov2_model_outputs", vec![1, 257, 32]),
        ("dinov2_registers_model_outputs", vec![1, 261, 32]),
    ];
    for (case, hidden) in cases {
        let (model, out) = (dir.join(format!("{case}.safetensors")), dir.join(format!("{case}.out.safetensors")));
        let cfg = fx.join(format!("{case}.config.json"));
        let io = fx.join(format!("{case}.io.safetensors"));
        wgvision_ok(&["convert", "--from", "hf", "--config", cfg.to_str().unwrap(), fx.join(format!("{case}.checkpoint.safetensors")).to_str().unwrap(), "-o", model.to_str().unwrap()]);
        wgvision_ok(&["run", model.to_str().unwrap(), "--input", io.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        for (name, shape) in [("last_hidden_state", hidden.clone()), ("pooler_output", vec![hidden[0], hidden[2]])] {
            let (got_shape, got) = read_tensor(&out, name);
            let (want_shape, want) = read_tensor(&io, name);
            assert_eq!(got_shape, want_shape);
            assert_eq!(got_shape, shape);
            let e = rel_l2(&got, &want);
            eprintln!("{case} {name}: rel-L2 {e:.2e}");
            assert!(e <= 1e-4, "{case} {name}: {e}");
        }
    }
    let model = dir.join("model_outputs.safetensors");
    // No logits to rank: --image says so and exits non-zero.
    let png = dir.join("img.png");
    image::RgbImage::from_fn(20, 20, |x, y| image::Rgb([x as u8 * 9, y as u8 * 9, 0])).save(&png).unwrap();
    let bad = wgvision(&["run", model.to_str().unwrap(), "--image", png.to_str().unwrap()]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no logits"), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// A config.json without `architectures` (as some training scripts save it): the head
/// comes from the checkpoint's tensors. DeiT's two heads, DINOv2's classifier, and a Swin
/// classifier (which was refused before) all still match transformers.
#[test]
fn config_without_architectures_takes_the_head_from_the_tensors() {
    let dir = temp_dir("golden_hf_no_arch");
    for (family, case) in [("hf_vit", "deit_teacher_heads_averaged"), ("hf_vit", "dinov2_518_run_224"), ("swin", "hf_classifier_image_and_map_padding")] {
        let src = fixtures().join(family).join(format!("{case}.config.json"));
        let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&src).unwrap()).unwrap();
        assert!(json.as_object_mut().unwrap().remove("architectures").is_some(), "{case}: the fixture names its class");
        let cfg = dir.join(format!("{case}.config.json"));
        std::fs::write(&cfg, json.to_string()).unwrap();
        let shape = cases(family).into_iter().find(|c| c.name == case).unwrap().out_shape;
        let e = golden_case(family, case, &["--from".into(), "hf".into(), "--config".into(), cfg.to_str().unwrap().into()], "f32", &shape);
        eprintln!("{case} without architectures: rel-L2 {e:.2e}");
        assert!(e <= 1e-4, "{case}: {e}");
    }
    // The run size applies to DINOv2 only.
    let cfg = fixtures().join("hf_vit/classifier_two_layers.config.json");
    let ckpt = fixtures().join("hf_vit/classifier_two_layers.checkpoint.safetensors");
    let out = wgvision(&["convert", "--from", "hf", "--config", cfg.to_str().unwrap(), "--set", "image_size=64", ckpt.to_str().unwrap(), "-o", dir.join("x.safetensors").to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("only DINOv2"), "{}", String::from_utf8_lossy(&out.stderr));
}
