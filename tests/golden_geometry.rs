//! Golden tests at the released geometries (image size, token count, width, head dim of
//! released checkpoints; depth cut to one or two blocks per stage). The checkpoints are
//! too large to commit, so tests/fixtures/geometry/<case>.json lists every tensor under
//! the peer's own names with the (offset, scale) that weights-tools/python/synth.py drew
//! it from; this test synthesizes the same float32 bits (checked against synth.py's
//! checksums), writes the checkpoint and the input, converts through the real `wgvision
//! convert` and runs the real `wgvision run`, against the peer's float64 outputs in
//! <case>.out.safetensors. f32: relative L2 <= 1e-4 per output; f16 storage: <= 2e-2.
mod common;
use common::*;
use safetensors::Dtype;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(serde::Deserialize)]
struct Spec {
    name: String,
    shape: Vec<usize>,
    offset: f32,
    scale: f32,
    checksum: String,
}

#[derive(serde::Deserialize)]
struct OutSpec {
    name: String,
    shape: Vec<usize>,
}

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
    seed: u64,
    inputs: Vec<Spec>,
    literal_inputs: Vec<String>,
    outputs: Vec<OutSpec>,
    tensors: Vec<Spec>,
    /// V-MoE: per MoE layer, the reference's tokens per expert, dropped choices and mean
    /// top-1 gate.
    #[serde(default)]
    routing_stats: Option<Vec<serde_json::Value>>,
}

fn dir() -> PathBuf {
    fixtures().join("geometry")
}

fn load(name: &str) -> Case {
    let text = std::fs::read_to_string(dir().join(format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Synthesize one tensor and check it against synth.py's checksum.
fn synthesize(case: &str, seed: u64, t: &Spec) -> (String, Dtype, Vec<usize>, Vec<u8>) {
    let v = synth(&t.name, t.shape.iter().product(), t.offset, t.scale, seed);
    let sum = format!("{:016x}", synth_checksum(&v));
    assert_eq!(sum, t.checksum, "{case}: synthesized '{}' differs from synth.py's (checksum); see synth_matches_python", t.name);
    (t.name.clone(), Dtype::F32, t.shape.clone(), bytemuck::cast_slice(&v).to_vec())
}

fn convert_args(c: &Case) -> Vec<String> {
    if c.from == "hf" || c.from == "vmoe" {
        return vec!["--from".into(), c.from.clone(), "--config".into(), dir().join(&c.config).to_str().unwrap().into()];
    }
    let mut args: Vec<String> = ["--from", "timm", "--model", &c.model].map(String::from).to_vec();
    for (k, v) in &c.sets {
        args.extend(["--set".to_string(), format!("{k}={v}")]);
    }
    args
}

/// Relative L2 of `got` against `want` for one output; transformers masks OWL's padding
/// queries with float64's minimum, for which wgvision must give exactly float32's minimum.
fn compare(case: &str, output: &str, got: &[f64], want: &[f64]) -> (f64, usize) {
    let masked: Vec<bool> = want.iter().map(|w| *w < -1e30).collect();
    for (g, _) in got.iter().zip(&masked).filter(|(_, m)| **m) {
        assert_eq!(*g, f32::MIN as f64, "{case}: {output}: a padding query's logit");
    }
    let keep = |v: &[f64]| v.iter().zip(&masked).filter(|(_, m)| !**m).map(|(x, _)| *x).collect::<Vec<_>>();
    let (g, w) = (keep(got), keep(want));
    assert!(g.iter().all(|x| x.is_finite()), "{case}: {output} has non-finite values");
    (rel_l2(&g, &w), got.len() - g.len())
}

/// `run --routing-stats` against the reference: tokens per expert and dropped choices
/// exactly, the mean top-1 gate to 1e-5.
fn check_routing(case: &str, path: &Path, want: &[serde_json::Value]) {
    let got: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let got = got["layers"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{case}: MoE layers");
    for (g, w) in got.iter().zip(want) {
        eprintln!("{case:<32} routing: tokens per expert {} (reference {}), dropped {} ({})", g["tokens_per_expert"], w["tokens_per_expert"], g["dropped"], w["dropped"]);
        assert_eq!(g["tokens_per_expert"], w["tokens_per_expert"], "{case}: tokens per expert");
        assert_eq!(g["dropped"], w["dropped"], "{case}: dropped choices");
        let (gg, wg) = (g["mean_top1_gate"].as_f64().unwrap(), w["mean_top1_gate"].as_f64().unwrap());
        assert!((gg - wg).abs() < 1e-5, "{case}: mean top-1 gate {gg} vs {wg}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// One case at each (dtype, bound): synthesize, convert, run, compare every output.
fn geometry_case(name: &str, dtypes: &[(&str, f64)]) {
    geometry_case_with(name, dtypes, 1, &[]);
}

/// Repeat a batch-first tensor `n` times along its first dimension.
fn repeat_batch((name, d, mut shape, bytes): (String, Dtype, Vec<usize>, Vec<u8>), n: usize) -> (String, Dtype, Vec<usize>, Vec<u8>) {
    shape[0] *= n;
    (name, d, shape, bytes.repeat(n))
}

/// `geometry_case` with the input batch repeated `repeat` times (every image must give the
/// reference's answer) and extra environment for the CLI (e.g. WGVISION_LIMITS=webgpu).
fn geometry_case_with(name: &str, dtypes: &[(&str, f64)], repeat: usize, env: &[(&str, &str)]) {
    let t0 = Instant::now();
    let c = load(name);
    assert_eq!(c.name, name);
    // Cases that share a fixture (another batch, capped limits) run in parallel: own folders.
    let tmp = temp_dir(&format!("geometry_{name}_x{repeat}{}", if env.is_empty() { "" } else { "_env" }));
    let (ckpt, input, refs) = (tmp.join("checkpoint.safetensors"), tmp.join("input.safetensors"), dir().join(format!("{name}.out.safetensors")));
    let tensors: Vec<_> = c.tensors.iter().map(|t| synthesize(name, c.seed, t)).collect();
    write_safetensors(&ckpt, &tensors);
    drop(tensors);
    let mut inputs: Vec<_> = c.inputs.iter().map(|t| repeat_batch(synthesize(name, c.seed, t), repeat)).collect();
    for lit in &c.literal_inputs {
        let (d, shape, bytes) = read_raw(&refs, lit);
        inputs.push(repeat_batch((lit.clone(), d, shape, bytes), repeat));
    }
    write_safetensors(&input, &inputs);
    let t_synth = t0.elapsed().as_secs_f64();
    for &(dtype, bound) in dtypes {
        let t1 = Instant::now();
        let (model, out) = (tmp.join(format!("model_{dtype}.safetensors")), tmp.join(format!("out_{dtype}.safetensors")));
        let mut args: Vec<String> = vec!["convert".into()];
        args.extend(convert_args(&c));
        args.extend([s(&ckpt).into(), "-o".into(), s(&model).into(), "--dtype".into(), dtype.into()]);
        wgvision_env_ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), env);
        let t_convert = t1.elapsed().as_secs_f64();
        let stats = tmp.join(format!("routing_{dtype}.json"));
        let mut run = vec!["run", s(&model), "--input", s(&input), "-o", s(&out)];
        if c.routing_stats.is_some() {
            run.extend(["--routing-stats", s(&stats)]);
        }
        wgvision_env_ok(&run, env);
        let t_run = t1.elapsed().as_secs_f64() - t_convert;
        if let Some(want) = &c.routing_stats {
            check_routing(name, &stats, want);
        }
        let mut errors = Vec::new();
        for o in &c.outputs {
            let (shape, got) = read_tensor(&out, &o.name);
            let (want_shape, want) = read_tensor(&refs, &o.name);
            assert_eq!(want_shape, o.shape, "{name}: {} in the reference vs the fixture index", o.name);
            let mut batched = o.shape.clone();
            batched[0] *= repeat;
            assert_eq!(shape, batched, "{name}: {} shape", o.name);
            let want = want.repeat(repeat);
            let (e, masked) = compare(name, &o.name, &got, &want);
            let note = if masked > 0 { format!(" ({masked} padding-query logits at f32::MIN)") } else { String::new() };
            eprintln!("{name:<32} {dtype} x{repeat} {:<18} rel-L2 {e:.2e}{note}", o.name);
            errors.push((o.name.clone(), e));
        }
        eprintln!("{name:<32} {dtype} synth {t_synth:.1} s, convert {t_convert:.1} s, run {t_run:.1} s");
        for (o, e) in errors {
            assert!(e <= bound, "{name} ({dtype}): {o} relative L2 {e:e} > {bound:e}");
        }
        let _ = std::fs::remove_file(&model);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

const F32: (&str, f64) = ("f32", 1e-4);
const F16: (&str, f64) = ("f16", 2e-2);

/// Every case in tests/fixtures/geometry/ has its test below.
const CASES: &[&str] = &[
    "vit_base_patch16_384",
    "vit_large_patch16_384",
    "dinov2_small_patch14_reg4_518",
    "clip_large_patch14_336",
    "swin_base_patch4_window12_384",
    "maxvit_tiny_tf_384",
    "maxvit_tiny_tf_512",
    "owlvit_base_patch32_768",
    "owlvit_base_patch16_768",
    "owlv2_base_patch16_960",
    "vmoe_b16_384_e8_k2",
];

#[test]
fn every_geometry_fixture_is_tested() {
    let mut found: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".json").map(String::from))
        .filter(|f| f != "synth" && !f.ends_with(".config"))
        .collect();
    found.sort();
    let mut listed: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

/// The Rust synth reproduces synth.py's values bit for bit (first 16 values, far indices
/// past 2^32 and 2^63, a non-ASCII name, a seed past 2^32), so that a mismatch fails here
/// with a clear message rather than as a relative L2 error in a golden case.
#[test]
fn synth_matches_python() {
    let text = std::fs::read_to_string(dir().join("synth.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vectors = v["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 4);
    for vec in vectors {
        let name = vec["name"].as_str().unwrap();
        let (off, sc, seed) = (vec["offset"].as_f64().unwrap() as f32, vec["scale"].as_f64().unwrap() as f32, vec["seed"].as_u64().unwrap());
        let got = synth(name, 16, off, sc, seed);
        let want: Vec<String> = vec["first16_bits"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_string()).collect();
        let got_bits: Vec<String> = got.iter().map(|x| format!("{:08x}", x.to_bits())).collect();
        assert_eq!(got_bits, want, "synth('{name}', offset {off}, scale {sc}, seed {seed}): first 16 values (f32 bits)");
        assert_eq!(format!("{:016x}", synth_checksum(&got)), vec["checksum"].as_str().unwrap(), "checksum of synth('{name}')");
        for at in vec["at"].as_array().unwrap() {
            let i = at[0].as_u64().unwrap();
            let bits = format!("{:08x}", synth_at(name, i, off, sc, seed).to_bits());
            assert_eq!(bits, at[1].as_str().unwrap(), "synth('{name}', seed {seed}) element {i}");
        }
    }
}

#[test]
fn vit_base_patch16_384() {
    geometry_case("vit_base_patch16_384", &[F32, F16]);
}

#[test]
fn vit_large_patch16_384() {
    geometry_case("vit_large_patch16_384", &[F32, F16]);
}

#[test]
fn dinov2_small_patch14_reg4_518() {
    geometry_case("dinov2_small_patch14_reg4_518", &[F32, F16]);
}

#[test]
fn clip_large_patch14_336() {
    geometry_case("clip_large_patch14_336", &[F32, F16]);
}

#[test]
fn swin_base_patch4_window12_384() {
    geometry_case("swin_base_patch4_window12_384", &[F32, F16]);
}

#[test]
fn maxvit_tiny_tf_384() {
    geometry_case("maxvit_tiny_tf_384", &[F32, F16]);
}

#[test]
fn maxvit_tiny_tf_512() {
    geometry_case("maxvit_tiny_tf_512", &[F32]);
}

#[test]
fn owlvit_base_patch32_768() {
    geometry_case("owlvit_base_patch32_768", &[F32, F16]);
}

#[test]
fn owlvit_base_patch16_768() {
    geometry_case("owlvit_base_patch16_768", &[F32]);
}

#[test]
fn owlv2_base_patch16_960() {
    geometry_case("owlv2_base_patch16_960", &[F32]);
}

#[test]
fn vmoe_b16_384_e8_k2() {
    geometry_case("vmoe_b16_384_e8_k2", &[F32]);
}

/// WebGPU's default limits (WGVISION_LIMITS=webgpu: 128 MiB bindings, 256 MiB buffers,
/// 65535 workgroups per dimension, 8192-texel textures) at real geometry and batch:
/// every image of the batch gives the reference's answer.
#[test]
fn owlv2_base_patch16_960_batch2_webgpu_limits() {
    geometry_case_with("owlv2_base_patch16_960", &[F32], 2, &[("WGVISION_LIMITS", "webgpu")]);
}

#[test]
fn vit_large_patch16_384_batch8_webgpu_limits() {
    geometry_case_with("vit_large_patch16_384", &[F32], 8, &[("WGVISION_LIMITS", "webgpu")]);
}
