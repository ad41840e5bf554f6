//! Golden tests: vmoe parameter trees and config.json files (random weights) converted by
//! the real `wgvision convert --from vmoe` and run by the real `wgvision run`, against the
//! float64 reference of vmoe's routing semantics (weights-tools/python/vmoe_reference.py).
//! f32: relative L2 <= 1e-4.
mod common;
use common::*;

#[test]
fn vmoe_f32_matches_reference() {
    golden_family("vmoe", "f32", 1e-4);
}

/// `run --routing-stats`: per MoE layer, tokens per expert and dropped choices equal the
/// reference's exactly; the mean top-1 gate agrees to 1e-5.
#[test]
fn vmoe_routing_stats_match_reference() {
    let text = std::fs::read_to_string(fixtures().join("vmoe/cases.json")).unwrap();
    let index: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (c, raw) in cases("vmoe").iter().zip(index["cases"].as_array().unwrap()) {
        let dir = temp_dir(&format!("vmoe_stats_{}", c.name));
        let fx = fixtures().join("vmoe");
        let model = dir.join("model.safetensors");
        let (io, out, stats) = (fx.join(format!("{}.io.safetensors", c.name)), dir.join("out.safetensors"), dir.join("stats.json"));
        let mut args: Vec<String> = vec!["convert".into()];
        args.extend(convert_args("vmoe", c));
        args.extend([fx.join(format!("{}.checkpoint.safetensors", c.name)).to_str().unwrap().to_string(), "-o".into(), model.to_str().unwrap().into()]);
        wgvision_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let (m, i, o, s) = (model.to_str().unwrap(), io.to_str().unwrap(), out.to_str().unwrap(), stats.to_str().unwrap());
        wgvision_ok(&["run", m, "--input", i, "-o", o, "--routing-stats", s]);
        let got: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
        let got = got["layers"].as_array().unwrap();
        let want = raw["routing_stats"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{}: MoE layers", c.name);
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g["tokens_per_expert"], w["tokens_per_expert"], "{}: tokens per expert", c.name);
            assert_eq!(g["dropped"], w["dropped"], "{}: dropped", c.name);
            let (gg, wg) = (g["mean_top1_gate"].as_f64().unwrap(), w["mean_top1_gate"].as_f64().unwrap());
            assert!((gg - wg).abs() < 1e-5, "{}: mean top-1 gate {gg} vs {wg}", c.name);
        }
        // The logits are unchanged by also reading the routing tables.
        let (_, logits) = read_tensor(&out, "logits");
        let (_, want_logits) = read_tensor(&io, "logits");
        assert!(rel_l2(&logits, &want_logits) <= 1e-4);
    }
}
