//! Helpers for CLI-level tests: run the real binary, temp dirs, safetensors reading.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn wgvision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgvision")).args(args).output().expect("run wgvision")
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
        return vec!["--from".into(), c.from.clone(), "--config".into(), cfg.to_str().unwrap().to_string()];
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
