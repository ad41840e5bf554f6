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
    let mut args: Vec<String> = ["--from", "timm", "--model", &case.model].map(String::from).to_vec();
    for (k, v) in &case.sets {
        args.extend(["--set".to_string(), format!("{k}={v}")]);
    }
    let e = golden_case("vit", &case.name, &args, dtype, &case.out_shape);
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
