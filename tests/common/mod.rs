//! Helpers for CLI-level tests: run the real binary, temp dirs, safetensors reading.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn wgvision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgvision")).args(args).output().expect("run wgvision")
}

/// Run with extra environment variables and require success.
pub fn wgvision_env_ok(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_wgvision")).args(args).envs(env.iter().copied()).output().expect("run wgvision");
    assert!(out.status.success(), "wgvision {args:?} ({env:?}) failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Run and require success, showing stderr otherwise.
pub fn wgvision_ok(args: &[&str]) -> Output {
    let out = wgvision(args);
    assert!(out.status.success(), "wgvision {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A fresh directory under target/ (removed and recreated).
pub fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// (shape, values as f64) of a tensor in a safetensors file (f32 or f64).
pub fn read_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap_or_else(|_| panic!("{} has no {name}", path.display()));
    let data = match t.dtype() {
        safetensors::Dtype::F64 => t.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        safetensors::Dtype::F32 => t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        d => panic!("dtype {d:?}"),
    };
    (t.shape().to_vec(), data)
}

/// Like `read_tensor`, also reading int64 / int32 tensors (token ids).
pub fn read_tensor_any(path: &Path, name: &str) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap_or_else(|_| panic!("{} has no {name}", path.display()));
    let data = match t.dtype() {
        safetensors::Dtype::I64 => t.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        safetensors::Dtype::I32 => t.data().chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        _ => return read_tensor(path, name),
    };
    (t.shape().to_vec(), data)
}

pub fn rel_l2(got: &[f64], want: &[f64]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    (num / den.max(1e-300)).sqrt()
}

/// One golden case through the real CLI: `convert <convert_args> CKPT -o MODEL --dtype D`,
/// then `run MODEL --input IO -o OUT`; returns the relative L2 error of `logits` against
/// the peer's float64 output stored in IO.
pub fn golden_case(family: &str, name: &str, convert_args: &[String], dtype: &str, out_shape: &[usize]) -> f64 {
    let dir = temp_dir(&format!("golden_{family}_{name}_{dtype}"));
    let ckpt = fixtures().join(format!("{family}/{name}.checkpoint.safetensors"));
    let io = fixtures().join(format!("{family}/{name}.io.safetensors"));
    let model = dir.join("model.safetensors");
    let out = dir.join("out.safetensors");
    let (ckpt_s, model_s, io_s, out_s) = (ckpt.to_str().unwrap(), model.to_str().unwrap(), io.to_str().unwrap(), out.to_str().unwrap());
    let mut args: Vec<&str> = vec!["convert"];
    args.extend(convert_args.iter().map(String::as_str));
    args.extend([ckpt_s, "-o", model_s, "--dtype", dtype]);
    wgvision_ok(&args);
    wgvision_ok(&["run", model_s, "--input", io_s, "-o", out_s]);
    let (shape, got) = read_tensor(&out, "logits");
    let (want_shape, want) = read_tensor(&io, "logits");
    assert_eq!(shape, want_shape, "{name}: output shape");
    assert_eq!(shape, out_shape, "{name}: output shape vs the fixture index");
    rel_l2(&got, &want)
}

/// One golden fixture from tests/fixtures/FAMILY/cases.json (written by the generator).
#[derive(serde::Deserialize)]
pub struct Case {
    pub name: String,
    pub from: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub sets: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub config: String,
    pub out_shape: Vec<usize>,
}

pub fn cases(family: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join(family).join("cases.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(v["cases"].clone()).unwrap()
}

/// `wgvision convert` arguments for a case: `--from hf|vmoe --config` or `--from timm --model --set`.
pub fn convert_args(family: &str, c: &Case) -> Vec<String> {
    if c.from == "hf" || c.from == "vmoe" {
        let cfg = fixtures().join(family).join(&c.config);
        let mut args = vec!["--from".into(), c.from.clone(), "--config".into(), cfg.to_str().unwrap().to_string()];
        for (k, v) in &c.sets {
            args.extend(["--set".to_string(), format!("{k}={v}")]);
        }
        return args;
    }
    let mut args: Vec<String> = ["--from", "timm", "--model", &c.model].map(String::from).to_vec();
    for (k, v) in &c.sets {
        args.extend(["--set".to_string(), format!("{k}={v}")]);
    }
    args
}

/// Every case of a family through `golden_case` at `dtype`; each must be within `bound`.
pub fn golden_family(family: &str, dtype: &str, bound: f64) {
    let cases = cases(family);
    assert!(!cases.is_empty(), "{family}: no fixtures");
    for c in &cases {
        let e = golden_case(family, &c.name, &convert_args(family, c), dtype, &c.out_shape);
        eprintln!("{:<40} {dtype} rel-L2 {e:.2e}", c.name);
        assert!(e <= bound, "{}: relative L2 error {e:e} > {bound:e}", c.name);
    }
}

/// weights-tools/python/synth.py's deterministic tensors, bit for bit: element i is the
/// float32 `offset + scale * u_i` (a multiply then an add, never fused), with
/// `u_i = f32(splitmix64(key + i * GOLDEN) >> 40) / 2^24 * 2 - 1` and
/// `key = fnv1a64(name) ^ seed`, all on wrapping u64.
pub const SYNTH_GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(SYNTH_GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn synth_from_key(key: u64, i: u64, offset: f32, scale: f32) -> f32 {
    let u = (splitmix64(key.wrapping_add(i.wrapping_mul(SYNTH_GOLDEN))) >> 40) as f32 / 16_777_216.0 * 2.0 - 1.0;
    // Two roundings, as numpy does: no mul_add.
    let prod = std::hint::black_box(scale * u);
    offset + prod
}

/// Element `i` of synth(name, .., offset, scale, seed).
pub fn synth_at(name: &str, i: u64, offset: f32, scale: f32, seed: u64) -> f32 {
    synth_from_key(fnv1a64(name.as_bytes()) ^ seed, i, offset, scale)
}

/// The first `n` elements (row-major) of synth(name, shape, offset, scale, seed).
pub fn synth(name: &str, n: usize, offset: f32, scale: f32, seed: u64) -> Vec<f32> {
    let key = fnv1a64(name.as_bytes()) ^ seed;
    (0..n as u64).map(|i| synth_from_key(key, i, offset, scale)).collect()
}

/// synth.py's `checksum`: sum of bits(v_i) * (i + 1) on wrapping u64.
pub fn synth_checksum(v: &[f32]) -> u64 {
    v.iter().enumerate().fold(0u64, |acc, (i, x)| acc.wrapping_add((x.to_bits() as u64).wrapping_mul(i as u64 + 1)))
}

/// Write tensors (name, dtype, shape, little-endian bytes) as a safetensors file.
pub fn write_safetensors(path: &Path, tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, &None, path).unwrap();
}

/// (dtype, shape, raw bytes) of one tensor of a safetensors file, whatever its dtype.
pub fn read_raw(path: &Path, name: &str) -> (safetensors::Dtype, Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap_or_else(|_| panic!("{} has no {name}", path.display()));
    (t.dtype(), t.shape().to_vec(), t.data().to_vec())
}
