//! Golden tests: timm checkpoints (random weights, timm's own tensor names) converted by
//! the real `wgvision convert` and run by the real `wgvision run`, against timm's float64
//! outputs. f32: relative L2 <= 1e-4; f16 weight storage: <= 2e-2.
mod common;
use common::*;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    model: String,
    sets: serde_json::Map<String, serde_json::Value>,
    out_shape: Vec<usize>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("vit/cases.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(v["cases"].clone()).unwrap()
}

fn run_case(case: &Case, dtype: &str, bound: f64) -> f64 {
    let dir = temp_dir(&format!("golden_vit_{}_{dtype}", case.name));
    let ckpt = fixtures().join(format!("vit/{}.checkpoint.safetensors", case.name));
    let io = fixtures().join(format!("vit/{}.io.safetensors", case.name));
    let model = dir.join("model.safetensors");
    let out = dir.join("out.safetensors");
    let sets: Vec<String> = case.sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["convert", "--from", "timm", "--model", &case.model];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let (ckpt_s, model_s, io_s, out_s) = (ckpt.to_str().unwrap(), model.to_str().unwrap(), io.to_str().unwrap(), out.to_str().unwrap());
    args.extend([ckpt_s, "-o", model_s, "--dtype", dtype]);
    wgvision_ok(&args);
    wgvision_ok(&["run", model_s, "--input", io_s, "-o", out_s]);
    let (shape, got) = read_tensor(&out, "logits");
    let (want_shape, want) = read_tensor(&io, "logits");
    assert_eq!(shape, want_shape, "{}: output shape", case.name);
    assert_eq!(shape, case.out_shape);
    let e = rel_l2(&got, &want);
    assert!(e <= bound, "{} ({dtype}): relative L2 error {e:e} > {bound:e}", case.name);
    e
}

#[test]
fn vit_family_f32_matches_timm() {
    let cases = cases();
    assert!(cases.len() >= 10, "fixture index lists {} cases", cases.len());
    for c in &cases {
        let e = run_case(c, "f32", 1e-4);
        eprintln!("{:<34} f32 rel-L2 {e:.2e}", c.name);
    }
}

#[test]
fn vit_family_f16_weights_match_timm() {
    for c in &cases() {
        let e = run_case(c, "f16", 2e-2);
        eprintln!("{:<34} f16 rel-L2 {e:.2e}", c.name);
    }
}
