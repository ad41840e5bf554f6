//! Golden tests: Swin checkpoints from timm and transformers (random weights, the peer's
//! own tensor names and config) converted by the real `wgvision convert` and run by the
//! real `wgvision run`, against the peer's float64 outputs. f32: relative L2 <= 1e-4;
//! f16 weight storage: <= 2e-2.
mod common;
use common::*;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    from: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    sets: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    config: String,
    out_shape: Vec<usize>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("swin/cases.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(v["cases"].clone()).unwrap()
}

fn convert_args(c: &Case) -> Vec<String> {
    if c.from == "hf" {
        let cfg = fixtures().join("swin").join(&c.config);
        return vec!["--from".into(), "hf".into(), "--config".into(), cfg.to_str().unwrap().to_string()];
    }
    let mut args: Vec<String> = ["--from", "timm", "--model", &c.model].map(String::from).to_vec();
    for (k, v) in &c.sets {
        args.extend(["--set".to_string(), format!("{k}={v}")]);
    }
    args
}

#[test]
fn swin_f32_matches_timm_and_transformers() {
    let cases = cases();
    assert!(cases.iter().any(|c| c.from == "hf") && cases.iter().any(|c| c.from == "timm"));
    for c in &cases {
        let e = golden_case("swin", &c.name, &convert_args(c), "f32", &c.out_shape);
        eprintln!("{:<40} f32 rel-L2 {e:.2e}", c.name);
        assert!(e <= 1e-4, "{}: relative L2 error {e:e} > 1e-4", c.name);
    }
}

#[test]
fn swin_f16_weights_match_timm_and_transformers() {
    for c in &cases() {
        let e = golden_case("swin", &c.name, &convert_args(c), "f16", &c.out_shape);
        eprintln!("{:<40} f16 rel-L2 {e:.2e}", c.name);
        assert!(e <= 2e-2, "{}: relative L2 error {e:e} > 2e-2", c.name);
    }
}
