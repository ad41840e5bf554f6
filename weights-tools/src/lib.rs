//! wgvision-weights: the model file format (safetensors + config metadata, canonical
//! tensor names in the engine's layout) and converters from peer checkpoints.
pub mod clip;
pub mod format;
pub mod hf_vit;
pub mod hub;
pub mod interp;
pub mod kwargs;
pub mod labels;
pub mod mapper;
pub mod maxvit;
pub mod owl;
pub mod progress;
pub mod st;
pub mod swin;
pub mod timm;
pub mod vmoe;
pub mod vmoe_ckpt;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum WeightsError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    BadFile { path: String, message: String },
    #[error("{path}: not a valid safetensors file: {message}")]
    NotSafetensors { path: String, message: String },
    #[error("{path}: not a wgvision model file: {message}")]
    NotAModelFile { path: String, message: String },
    #[error("checkpoint is missing tensor '{tensor}'{hint}")]
    MissingTensor { tensor: String, hint: String },
    #[error("checkpoint has unexpected tensor '{tensor}' (shape {shape:?}); it does not belong to the configured model{hint}")]
    UnexpectedTensor { tensor: String, shape: Vec<usize>, hint: String },
    #[error("tensor '{tensor}' has shape {got:?}, expected {expected:?}{hint}")]
    ShapeMismatch { tensor: String, expected: Vec<usize>, got: Vec<usize>, hint: String },
    #[error("tensor '{tensor}' has dtype {dtype}, which wgvision cannot read (it reads F32, F16, BF16 and F64 weights, and I64 / I32 ids)")]
    UnsupportedDtype { tensor: String, dtype: String },
    #[error("model file tensor '{tensor}' has dtype {dtype}; model files hold F32 or F16 tensors (make one with `wgvision convert`)")]
    ModelFileDtype { tensor: String, dtype: String },
    #[error("unknown timm model '{name}'{hint}")]
    UnknownModel { name: String, hint: String },
    #[error("option {key}: {message}")]
    BadOption { key: String, message: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Graph(#[from] wgvision_graphs::GraphError),
}

pub type Result<T> = std::result::Result<T, WeightsError>;

/// The config `timm.create_model(name, **overrides)` would build, for any timm family
/// wgvision converts (the name's prefix picks the family, as timm's registry does).
pub fn timm_config(name: &str, overrides: &[(String, serde_json::Value)]) -> Result<wgvision_graphs::ModelConfig> {
    use wgvision_graphs::ModelConfig;
    if name.starts_with("maxvit_") {
        return Ok(ModelConfig::MaxVit(maxvit::timm_config(name, overrides)?));
    }
    if name.starts_with("swin_") {
        return Ok(ModelConfig::Swin(swin::timm_config(name, overrides)?));
    }
    Ok(ModelConfig::Vit(timm::config(name, overrides)?))
}

/// A transformers config.json: the model_type picks the family. `run_size` is the input
/// size for models that resample their position embedding to it (DINOv2: the image
/// processor's crop); others run at their config's image_size.
pub fn hf_config(json: &serde_json::Value, run_size: Option<[usize; 2]>) -> Result<wgvision_graphs::ModelConfig> {
    use wgvision_graphs::ModelConfig;
    let model_type = json["model_type"].as_str().unwrap_or("");
    if run_size.is_some() && !hf_vit::handles(model_type) {
        return Err(WeightsError::Unsupported(format!("image_size: a transformers '{model_type}' model runs at its config's image_size")));
    }
    match model_type {
        "owlvit" | "owlv2" => Ok(ModelConfig::Owl(owl::hf_config(json)?)),
        t if clip::handles(t) => Ok(ModelConfig::Clip(clip::config(json)?)),
        t if hf_vit::handles(t) => Ok(ModelConfig::Vit(hf_vit::config(json, run_size)?)),
        _ => Ok(ModelConfig::Swin(swin::hf_config(json)?)),
    }
}

/// transformers configs take one `--set`, `image_size=N` (or [H, W]): the input size of a
/// model that resamples its position embedding (DINOv2; default: its processor's crop).
pub fn hf_run_size(sets: &[(String, serde_json::Value)]) -> Result<Option<[usize; 2]>> {
    let mut size = None;
    for (k, v) in sets {
        if k != "image_size" {
            return Err(kwargs::bad_option(k, "transformers configs take only --set image_size=N (edit config.json for the rest)".into()));
        }
        size = Some(kwargs::pair_of(v).filter(|s| s[0] > 0 && s[1] > 0).ok_or_else(|| kwargs::bad_option("image_size", format!("{v}: expected N or [H, W]")))?);
    }
    Ok(size)
}

/// A config.json without `architectures` (as saved by some scripts) names its class from
/// the checkpoint's head tensors: a copy of `json` with the class filled in.
pub fn hf_architecture_from_tensors(json: &serde_json::Value, names: &[&str]) -> serde_json::Value {
    let mut json = json.clone();
    let named = json["architectures"].as_array().is_some_and(|a| !a.is_empty());
    let model_type = json["model_type"].as_str().unwrap_or("").to_string();
    let arch = if named {
        None
    } else if let Some(a) = hf_vit::architecture_from_tensors(&model_type, names).or_else(|| clip::architecture_from_tensors(&model_type, names)) {
        Some(a)
    } else if model_type == "swin" {
        Some(if names.contains(&"classifier.weight") { "SwinForImageClassification" } else { "SwinModel" }.to_string())
    } else {
        None
    };
    if let (Some(a), Some(obj)) = (arch, json.as_object_mut()) {
        obj.insert("architectures".into(), serde_json::json!([a]));
    }
    json
}

/// A built-in benchmark preset: a timm model name, a V-MoE preset (`vmoe_*`), an OWL
/// preset (`owlvit-base-patch32`, `owlv2-base-patch16`) or a CLIP / SigLIP one
/// (`clip-vit-base-patch32`, `clip-vit-base-patch16`, `siglip-base-patch16-224`).
pub fn preset_config(name: &str) -> Result<wgvision_graphs::ModelConfig> {
    if let Some(json) = vmoe::preset(name) {
        return Ok(wgvision_graphs::ModelConfig::Vmoe(vmoe::config(&json)?));
    }
    if let Some(json) = owl::preset(name) {
        return Ok(wgvision_graphs::ModelConfig::Owl(owl::hf_config(&json)?));
    }
    if let Some(json) = clip::preset(name) {
        return Ok(wgvision_graphs::ModelConfig::Clip(clip::config(&json)?));
    }
    timm_config(name, &[])
}

/// Every timm model name `timm_config` accepts.
pub fn timm_model_names() -> Vec<String> {
    let mut names = timm::model_names();
    names.extend(swin::model_names());
    names.extend(maxvit::model_names());
    names
}

/// Refuse a config whose graph (at its smallest batch) has a tensor no device can hold:
/// more elements than a shader's u32 index reaches, or more bytes than the host-memory
/// budget (e.g. `--set img_size=100000`), naming the tensor and its size.
pub fn check_geometry(config: &wgvision_graphs::ModelConfig) -> Result<()> {
    let graph = config.build(config.min_batch())?;
    for t in &graph.tensors {
        let numel = t.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        let what = format!("tensor {} {:?}", t.name, t.shape);
        match numel {
            Some(n) if n <= u32::MAX as u64 => {}
            _ => return Err(WeightsError::Unsupported(format!("{what} has more than 2^32 elements, which shader indices cannot address (check img_size)"))),
        }
        st::check_host_bytes(&what, numel.and_then(|n| n.checked_mul(4)))?;
    }
    Ok(())
}

/// Map a peer checkpoint's tensors onto the canonical names of `config`; the conversion
/// hands back the config the tensors were mapped for, to be written with them.
/// `convert` for a config read from a transformers config.json (`hf_config`): the same
/// families under transformers' tensor names.
pub fn convert_hf(config: wgvision_graphs::ModelConfig, tensors: Vec<st::Tensor>) -> Result<mapper::Conversion> {
    match config {
        wgvision_graphs::ModelConfig::Vit(c) => {
            check_geometry(&wgvision_graphs::ModelConfig::Vit(c.clone()))?;
            hf_vit::convert(c, tensors)
        }
        other => convert(other, tensors),
    }
}

pub fn convert(config: wgvision_graphs::ModelConfig, tensors: Vec<st::Tensor>) -> Result<mapper::Conversion> {
    use wgvision_graphs::ModelConfig;
    check_geometry(&config)?;
    match config {
        ModelConfig::Vit(c) => timm::convert(c, tensors),
        ModelConfig::Swin(c) => swin::convert(c, tensors),
        ModelConfig::MaxVit(c) => maxvit::convert(c, tensors),
        ModelConfig::Vmoe(c) => vmoe::convert(c, tensors),
        ModelConfig::Owl(c) => owl::convert(c, tensors),
        ModelConfig::Clip(c) => clip::convert(c, tensors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgvision_graphs::ModelConfig;

    fn vit(name: &str) -> wgvision_graphs::vit::VitConfig {
        match timm_config(name, &[]).unwrap() {
            ModelConfig::Vit(c) => c,
            other => panic!("{name}: {}", other.name()),
        }
    }

    /// `NAME.TAG` takes that pretrained tag's class count and preprocessing, as
    /// `timm.create_model("NAME.TAG")` and its pretrained_cfg do (recorded from timm).
    #[test]
    fn timm_pretrained_tags_select_their_cfg() {
        let base = vit("vit_base_patch16_224");
        assert_eq!((base.num_classes, base.preprocess.mean), (1000, [0.5; 3]));
        let in21k = vit("vit_base_patch16_224.augreg_in21k");
        assert_eq!(in21k.num_classes, 21843);
        let dino = vit("vit_base_patch16_224.dino");
        assert_eq!(dino.num_classes, 0, "a feature tag has no head");
        assert_eq!(dino.preprocess.mean, [0.485, 0.456, 0.406]);
        let clip = vit("vit_base_patch16_clip_224.laion2b_ft_in12k_in1k");
        assert_eq!((clip.num_classes, clip.preprocess.crop_pct), (1000, 0.95));
        // --set still wins over the tag.
        let set = timm_config("vit_base_patch16_224.augreg_in21k", &[("num_classes".into(), 10.into())]).unwrap();
        assert!(matches!(set, ModelConfig::Vit(c) if c.num_classes == 10));
        // Swin and MaxViT names take tags the same way.
        let swin = timm_config("swin_tiny_patch4_window7_224.ms_in22k", &[]).unwrap();
        assert!(matches!(&swin, ModelConfig::Swin(c) if c.num_classes == 21841), "{swin:?}");
        let err = timm_config("vit_base_patch16_224.no_such_tag", &[]).unwrap_err().to_string();
        assert!(err.contains("no pretrained tag 'no_such_tag'") && err.contains("augreg2_in21k_ft_in1k"), "{err}");
    }
}
