//! Golden tests: OWL-ViT and OWLv2 detection checkpoints from transformers (random
//! weights, transformers' names and config.json) converted by the real `wgvision convert
//! --from hf` and run by the real `wgvision run` on pixel_values + int64 input_ids +
//! attention_mask, against transformers' float64 logits, pred_boxes and objectness.
//! f32: relative L2 <= 1e-4 on each; padding queries must be exactly float32's minimum.
mod common;
use common::*;

#[test]
fn owl_f32_matches_transformers() {
    let text = std::fs::read_to_string(fixtures().join("owl/cases.json")).unwrap();
    let index: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = index["cases"].as_array().unwrap();
    assert!(cases.iter().any(|c| c["outputs"].as_array().unwrap().len() == 3), "an OWLv2 case with objectness");
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let fx = fixtures().join("owl");
        let dir = temp_dir(&format!("golden_owl_{name}"));
        let (model, out) = (dir.join("model.safetensors"), dir.join("out.safetensors"));
        let (cfg, ckpt, io) = (fx.join(format!("{name}.config.json")), fx.join(format!("{name}.checkpoint.safetensors")), fx.join(format!("{name}.io.safetensors")));
        let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
        wgvision_ok(&["convert", "--from", "hf", "--config", &s(&cfg), &s(&ckpt), "-o", &s(&model)]);
        wgvision_ok(&["run", &s(&model), "--input", &s(&io), "-o", &s(&out)]);
        for output in c["outputs"].as_array().unwrap() {
            let output = output.as_str().unwrap();
            let (shape, got) = read_tensor(&out, output);
            let (want_shape, want) = read_tensor(&io, output);
            assert_eq!(shape, want_shape, "{name}: {output} shape");
            // transformers masks padding queries with float64's minimum, which its float32
            // cast turns into -inf; in float32 it is float32's minimum.
            let masked: Vec<bool> = want.iter().map(|w| *w < -1e30).collect();
            let mut n_masked = 0;
            for (g, _) in got.iter().zip(&masked).filter(|(_, m)| **m) {
                assert_eq!(*g, f32::MIN as f64, "{name}: a padding query's logit");
                n_masked += 1;
            }
            let keep = |v: &[f64]| v.iter().zip(&masked).filter(|(_, m)| !**m).map(|(x, _)| *x).collect::<Vec<_>>();
            let e = rel_l2(&keep(&got), &keep(&want));
            eprintln!("{name:<36} {output:<18} rel-L2 {e:.2e} ({n_masked} padding-query logits)");
            assert!(e <= 1e-4, "{name}: {output} relative L2 {e:e} > 1e-4");
        }
    }
}
