//! Hub snapshot folders, as `huggingface_hub.snapshot_download` leaves them: a
//! transformers folder (config.json with `model_type`, model.safetensors or shards listed
//! in model.safetensors.index.json, preprocessor_config.json, tokenizer files) or a timm
//! folder (config.json with `architecture`, `num_classes`, `pretrained_cfg`, and
//! model.safetensors). Everything the conversion needs comes from the folder.
use crate::kwargs::timm_preprocess;
use crate::st::{self, read_json, Tensor};
use crate::{Result, WeightsError};
use serde_json::Value;
use std::path::Path;
use wgvision_graphs::{ModelConfig, Preprocess};

/// What a folder holds, read and checked.
pub struct Folder {
    /// transformers (true) or timm (false) tensor names.
    pub transformers: bool,
    pub config: ModelConfig,
    pub tensors: Vec<Tensor>,
    pub labels: Option<Vec<String>>,
}

/// model.safetensors, or every shard model.safetensors.index.json's weight_map names.
fn tensors(dir: &Path) -> Result<Vec<Tensor>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(st::load(&single)?.1);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(WeightsError::Unsupported(format!("{}: no model.safetensors and no model.safetensors.index.json", dir.display())));
    }
    let map = read_json(&index)?;
    let map = map["weight_map"].as_object().ok_or_else(|| WeightsError::Unsupported(format!("{}: no weight_map", index.display())))?;
    let mut shards: Vec<&str> = map.values().filter_map(Value::as_str).collect();
    shards.sort();
    shards.dedup();
    let mut out: Vec<Tensor> = Vec::new();
    for shard in shards {
        if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
            return Err(WeightsError::Unsupported(format!("{}: shard name {shard:?} leaves the folder", index.display())));
        }
        out.extend(st::load(&dir.join(shard))?.1);
    }
    let names: std::collections::HashSet<&str> = out.iter().map(|t| t.name.as_str()).collect();
    if let Some(missing) = map.keys().find(|k| !names.contains(k.as_str())) {
        return Err(WeightsError::Unsupported(format!("{}: tensor {missing} is listed but in no shard", index.display())));
    }
    Ok(out)
}

/// transformers' image processor config over the family's defaults `base` (only the keys
/// present override them): mean, std, resample, resize (`shortest_edge`: keep the aspect
/// ratio; `height`/`width` or one number: both sides) and the center crop.
fn processor(json: &Value, base: &Preprocess) -> Preprocess {
    let mut p = base.clone();
    let triple = |k: &str| -> Option<[f32; 3]> {
        let a = json[k].as_array().filter(|a| a.len() == 3)?;
        let v: Vec<f32> = a.iter().filter_map(Value::as_f64).map(|x| x as f32).collect();
        (v.len() == 3).then(|| [v[0], v[1], v[2]])
    };
    if let Some(m) = triple("image_mean") {
        p.mean = m;
    }
    if let Some(s) = triple("image_std") {
        p.std = s;
    }
    // PIL resample codes: 0 nearest, 2 bilinear, 3 bicubic.
    match json["resample"].as_u64() {
        Some(0) => p.interpolation = "nearest".into(),
        Some(2) => p.interpolation = "bilinear".into(),
        Some(3) => p.interpolation = "bicubic".into(),
        _ => {}
    }
    let size = &json["size"];
    let (mode, edge) = match (size["shortest_edge"].as_f64(), size["height"].as_f64(), size.as_f64()) {
        (Some(e), _, _) => ("center", e),
        (_, Some(h), _) => ("squash", h),
        (_, _, Some(e)) => ("squash", e),
        _ => return p,
    };
    let crop = json["do_center_crop"].as_bool().unwrap_or(json.get("crop_size").is_some());
    p.crop_mode = mode.into();
    // The crop over the resized side (the processor's crop_size; else the model's input).
    let out = crop_size(json).map_or(p.input_size[1], |s| s[0]) as f64;
    p.crop_pct = if edge > 0.0 && (crop || mode == "center") { (out / edge).min(1.0) as f32 } else { 1.0 };
    p
}

/// An image processor's output size: crop_size, else size (height/width or shortest_edge).
fn crop_size(json: &Value) -> Option<[usize; 2]> {
    let hw = |v: &Value| match (v["height"].as_u64(), v["width"].as_u64(), v["shortest_edge"].as_u64(), v.as_u64()) {
        (Some(h), Some(w), _, _) => Some([h as usize, w as usize]),
        (_, _, Some(e), _) | (_, _, _, Some(e)) => Some([e as usize; 2]),
        _ => None,
    };
    if json["do_center_crop"].as_bool() != Some(false) {
        if let Some(s) = hw(&json["crop_size"]) {
            return Some(s);
        }
    }
    hw(&json["size"])
}

/// Read a hub snapshot folder. `sets` are timm constructor overrides (timm folders).
pub fn read(dir: &Path, sets: &[(String, Value)]) -> Result<Folder> {
    let cfg_path = dir.join("config.json");
    if !cfg_path.is_file() {
        return Err(WeightsError::Unsupported(format!("{}: no config.json (not a hub snapshot folder)", dir.display())));
    }
    let json = read_json(&cfg_path)?;
    if let Some(arch) = json["architecture"].as_str() {
        // timm: the architecture and its head; the pretrained_cfg's preprocessing.
        // timm's load_model_config_from_hf: num_classes, then model_args as kwargs.
        let mut kw: Vec<(String, Value)> = Vec::new();
        if let Some(n) = json["num_classes"].as_u64() {
            kw.push(("num_classes".into(), n.into()));
        }
        if let Some(args) = json["model_args"].as_object() {
            kw.extend(args.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        kw.extend(sets.iter().cloned());
        let mut config = crate::timm_config(arch, &kw)?;
        if let Some(pc) = json.get("pretrained_cfg") {
            let [_, h, w] = config.preprocess().input_size;
            config.set_preprocess(timm_preprocess(pc, 3, [h, w]));
        }
        let labels = json["label_names"].as_array().map(|a| a.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect());
        return Ok(Folder { transformers: false, config, tensors: tensors(dir)?, labels });
    }
    let set_size = crate::hf_run_size(sets)?;
    let pre = dir.join("preprocessor_config.json");
    let pre = if pre.is_file() { Some(read_json(&pre)?) } else { None };
    let tensors = tensors(dir)?;
    let json = crate::hf_architecture_from_tensors(&json, &tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>());
    // DINOv2 runs at its processor's crop (its position embedding is resampled to it).
    let run_size = match (&pre, json["model_type"].as_str()) {
        _ if set_size.is_some() => set_size,
        (Some(p), Some(t)) if t.starts_with("dinov2") => crop_size(p),
        _ => None,
    };
    let mut config = crate::hf_config(&json, run_size)?;
    if let Some(p) = &pre {
        let merged = processor(p, config.preprocess());
        config.set_preprocess(merged);
    }
    let labels = crate::labels::from_id2label(&json).map_err(|e| WeightsError::Unsupported(format!("{}: {e}", cfg_path.display())))?;
    Ok(Folder { transformers: true, config, tensors, labels })
}
