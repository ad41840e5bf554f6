//! `wgvision convert`: peer checkpoint -> model file, every tensor checked.
use super::{CliResult, From};
use std::path::PathBuf;
use wgvision::weights::{format, st, timm};

#[allow(clippy::too_many_arguments)]
pub fn convert(
    from: From,
    model: Option<String>,
    sets: Vec<String>,
    config: Option<PathBuf>,
    list_models: bool,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    f16: bool,
) -> CliResult {
    match from {
        From::Timm => {}
        From::Hf => return Err("--from hf is not supported by this build yet (timm ViT checkpoints are)".into()),
        From::Vmoe => return Err("--from vmoe is not supported by this build yet (timm ViT checkpoints are)".into()),
    }
    if list_models {
        for n in timm::model_names() {
            println!("{n}");
        }
        return Ok(());
    }
    let _ = config;
    let name = model.ok_or("--from timm needs --model NAME")?;
    let input = input.ok_or("missing the input checkpoint (IN.safetensors)")?;
    let output = output.ok_or("missing -o OUT.safetensors")?;
    let mut overrides = Vec::new();
    for s in &sets {
        let (k, v) = s.split_once('=').ok_or_else(|| format!("--set {s}: expected KEY=JSON"))?;
        let v: serde_json::Value = serde_json::from_str(v)
            .map_err(|e| format!("--set {s}: the value is not JSON ({e}); strings need quotes, e.g. --set global_pool='\"avg\"'"))?;
        overrides.push((k.trim().to_string(), v));
    }
    let cfg = timm::config(&name, &overrides)?;
    let (_, tensors) = st::load(&input)?;
    let (model_cfg, converted) = timm::convert(&cfg, tensors)?;
    let count: usize = converted.values().map(|(s, _)| s.iter().product::<usize>()).sum();
    format::write_model(&output, &model_cfg, converted, f16)?;
    eprintln!(
        "converted {name} ({:.2}M parameters, {}) -> {}",
        count as f64 / 1e6,
        if f16 { "f16 matmul weights" } else { "f32" },
        output.display()
    );
    Ok(())
}
