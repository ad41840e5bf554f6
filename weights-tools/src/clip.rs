//! transformers CLIP (`CLIPModel`, `CLIPVisionModel`, `CLIPVisionModelWithProjection`) and
//! SigLIP (`SiglipModel`, `SiglipVisionModel`) checkpoints and config.json -> model files.
//! q/k/v are fused and Linear weights transposed; SigLIP's attention-pooling probe is
//! input-independent, so its query projection (pre-scaled by 1/sqrt(head_dim)) is computed
//! here, and the key/value rows of its in_proj become one [D, 2D] projection.
use crate::kwargs::{bad_option, Kwargs};
use crate::mapper::{self, linear_t, Conversion, Layout, Mapper};
use crate::owl::{encoder, CLIP_MEAN, CLIP_STD};
use crate::st::Tensor;
use crate::{Result, WeightsError};
use serde_json::Value;
use wgvision_graphs::clip::{ClipConfig, ClipKind, ClipOutputs, TextTower};
use wgvision_graphs::owl::Tower;
use wgvision_graphs::{ModelConfig, Preprocess};

/// Whether `model_type` is one of this module's.
pub fn handles(model_type: &str) -> bool {
    matches!(model_type, "clip" | "clip_vision_model" | "siglip" | "siglip_vision_model")
}

struct Defaults {
    hidden: usize,
    inter: usize,
    heads: usize,
    eps: f64,
    act: &'static str,
}

/// transformers' config defaults: SiglipVisionConfig / SiglipTextConfig share theirs;
/// CLIPTextConfig is narrower than CLIPVisionConfig.
fn defaults(siglip: bool, text: bool) -> Defaults {
    match (siglip, text) {
        (true, _) => Defaults { hidden: 768, inter: 3072, heads: 12, eps: 1e-6, act: "gelu_pytorch_tanh" },
        (false, false) => Defaults { hidden: 768, inter: 3072, heads: 12, eps: 1e-5, act: "quick_gelu" },
        (false, true) => Defaults { hidden: 512, inter: 2048, heads: 8, eps: 1e-5, act: "quick_gelu" },
    }
}

fn tower(kw: &Kwargs, d: Defaults) -> Result<Tower> {
    let t = Tower {
        hidden_size: kw.usize("hidden_size", d.hidden)?,
        num_layers: kw.usize("num_hidden_layers", 12)?,
        num_heads: kw.usize("num_attention_heads", d.heads)?,
        intermediate_size: kw.usize("intermediate_size", d.inter)?,
        layer_norm_eps: kw.f64("layer_norm_eps", d.eps)? as f32,
        act: mapper::activation("hidden_act", &kw.str("hidden_act", d.act)?)?,
    };
    if t.num_heads == 0 || !t.hidden_size.is_multiple_of(t.num_heads) {
        return Err(bad_option("num_attention_heads", format!("hidden_size {} is not divisible by {}", t.hidden_size, t.num_heads)));
    }
    Ok(t)
}

/// A CLIPConfig / CLIPVisionConfig / SiglipConfig / SiglipVisionConfig.
pub fn config(json: &Value) -> Result<ClipConfig> {
    let model_type = json["model_type"].as_str().unwrap_or("");
    let kind = if model_type.starts_with("siglip") { ClipKind::Siglip } else { ClipKind::Clip };
    let vision_only = model_type.ends_with("_vision_model");
    let classes: &[(&str, ClipOutputs)] = match kind {
        ClipKind::Clip => &[("CLIPModel", ClipOutputs::Model), ("CLIPVisionModel", ClipOutputs::Vision), ("CLIPVisionModelWithProjection", ClipOutputs::VisionProjection)],
        ClipKind::Siglip => &[("SiglipModel", ClipOutputs::Model), ("SiglipVisionModel", ClipOutputs::Vision)],
    };
    let outputs = mapper::transformers_class(json, classes, vision_only as usize)?;
    if vision_only && outputs == ClipOutputs::Model {
        return Err(WeightsError::Unsupported(format!("model_type '{model_type}' holds the image tower only; {} needs the full config", classes[0].0)));
    }
    let sub = |k: &str| Kwargs(json.get(k).and_then(Value::as_object).cloned().unwrap_or_default());
    let top = Kwargs(json.as_object().cloned().unwrap_or_default());
    let vision_kw = if vision_only { Kwargs(top.0.clone()) } else { sub("vision_config") };
    let siglip = kind == ClipKind::Siglip;
    let vision = tower(&vision_kw, defaults(siglip, false))?;
    if vision_kw.usize("num_channels", 3)? != 3 {
        return Err(bad_option("vision_config.num_channels", "only 3-channel images are supported".into()));
    }
    if siglip && !vision_kw.bool("vision_use_head", true)? {
        return Err(WeightsError::Unsupported("SigLIP with vision_use_head = false (no pooling head) is not supported".into()));
    }
    let image_size = vision_kw.usize("image_size", 224)?;
    let patch_size = vision_kw.usize("patch_size", if siglip { 16 } else { 32 })?;
    let text = if outputs == ClipOutputs::Model {
        let tk = sub("text_config");
        let t = tower(&tk, defaults(siglip, true))?;
        let vocab_size = tk.usize("vocab_size", if siglip { 32000 } else { 49408 })?;
        // CLIP pools at the first end-of-text id (the largest id, as the graph's eos pool
        // finds it; the legacy value 2 means argmax in transformers too).
        let eos = tk.usize("eos_token_id", 49407)?;
        if !siglip && eos != 2 && eos + 1 != vocab_size {
            return Err(WeightsError::Unsupported(format!(
                "text_config.eos_token_id {eos}: wgvision pools CLIP's text at the largest token id, which must be the end-of-text token (vocab_size - 1 = {})",
                vocab_size.saturating_sub(1)
            )));
        }
        Some(TextTower {
            vocab_size,
            max_position_embeddings: tk.usize("max_position_embeddings", if siglip { 64 } else { 77 })?,
            tower: t,
        })
    } else {
        None
    };
    let projection_dim = match kind {
        ClipKind::Clip => top.usize("projection_dim", 512)?,
        // SigLIP's image embedding is the pooled output; the text head maps to its width.
        ClipKind::Siglip => match &text {
            Some(t) => sub("text_config").usize("projection_size", t.tower.hidden_size)?,
            None => vision.hidden_size,
        },
    };
    // CLIPImageProcessor: shortest edge to 224 (bicubic), center crop 224, CLIP's mean/std.
    // SiglipImageProcessor: resize to the square (bicubic), mean = std = 0.5.
    let preprocess = Preprocess {
        input_size: [3, image_size, image_size],
        mean: if siglip { [0.5; 3] } else { CLIP_MEAN },
        std: if siglip { [0.5; 3] } else { CLIP_STD },
        crop_pct: 1.0,
        crop_mode: if siglip { "squash" } else { "center" }.into(),
        interpolation: "bicubic".into(),
    };
    let c = ClipConfig {
        name: json["_name_or_path"].as_str().filter(|s| !s.is_empty()).unwrap_or(classes.iter().find(|x| x.1 == outputs).map_or("clip", |x| x.0)).to_string(),
        kind,
        outputs,
        image_size,
        patch_size,
        vision,
        text,
        projection_dim,
        preprocess,
    };
    c.check()?;
    Ok(c)
}

/// The class a config.json without `architectures` holds, from its tensors.
pub fn architecture_from_tensors(model_type: &str, names: &[&str]) -> Option<String> {
    let has = |n: &str| names.contains(&n);
    Some(match model_type {
        "clip" | "clip_vision_model" if has("text_model.final_layer_norm.weight") => "CLIPModel",
        "clip" | "clip_vision_model" if has("visual_projection.weight") => "CLIPVisionModelWithProjection",
        "clip" | "clip_vision_model" => "CLIPVisionModel",
        "siglip" | "siglip_vision_model" if has("text_model.final_layer_norm.weight") => "SiglipModel",
        "siglip" | "siglip_vision_model" => "SiglipVisionModel",
        _ => return None,
    }.to_string())
}

fn shape_hint(name: &str, _got: &[usize]) -> String {
    if name.contains("position_embedding") {
        "; the checkpoint was trained at another image_size / patch_size / max_position_embeddings: use its config.json".into()
    } else {
        String::new()
    }
}

/// A scalar parameter (torch saves CLIP's logit_scale as shape [], SigLIP's as [1]).
fn scalar(m: &mut Mapper, from: &str, to: &str) -> Result<()> {
    let shape = m.shape_of(from).unwrap_or_default();
    let shape = if shape.is_empty() { vec![] } else { vec![1] };
    let v = m.take(from, &shape)?;
    m.put(to, vec![1], v);
    Ok(())
}

/// Map a CLIP / SigLIP state dict onto the canonical names of `c`.
pub fn convert(c: ClipConfig, tensors: Vec<Tensor>) -> Result<Conversion> {
    let mut m = Mapper::new(tensors, Layout::Torch, shape_hint);
    m.discard(|k| k.ends_with("position_ids"));
    let siglip = c.kind == ClipKind::Siglip;
    let (dv, p) = (c.vision.hidden_size, c.patch_size);
    let vm = "vision_model";
    let np = c.grid() * c.grid();
    if siglip {
        m.linear_dims(&format!("{vm}.embeddings.patch_embedding"), "vision.patch_embedding", &[3, p, p], &[dv], true)?;
        m.copy(&format!("{vm}.embeddings.position_embedding.weight"), "vision.position_embedding", &[np, dv], vec![np, dv])?;
    } else {
        m.copy(&format!("{vm}.embeddings.class_embedding"), "vision.class_embedding", &[dv], vec![1, dv])?;
        m.linear_dims(&format!("{vm}.embeddings.patch_embedding"), "vision.patch_embedding", &[3, p, p], &[dv], false)?;
        m.copy(&format!("{vm}.embeddings.position_embedding.weight"), "vision.position_embedding", &[np + 1, dv], vec![np + 1, dv])?;
        m.norm(&format!("{vm}.pre_layrnorm"), "vision.pre_norm", dv)?;
    }
    encoder(&mut m, vm, "vision", &c.vision)?;
    m.norm(&format!("{vm}.post_layernorm"), "vision.post_norm", dv)?;
    if siglip {
        let h = format!("{vm}.head");
        let probe = m.take(&format!("{h}.probe"), &[1, 1, dv])?;
        let w = m.take(&format!("{h}.attention.in_proj_weight"), &[3 * dv, dv])?; // [3D, D] rows q, k, v
        let b = m.take(&format!("{h}.attention.in_proj_bias"), &[3 * dv])?;
        let scale = 1.0 / ((dv / c.vision.num_heads) as f64).sqrt();
        let q: Vec<f32> = (0..dv)
            .map(|o| ((w[o * dv..(o + 1) * dv].iter().zip(&probe).map(|(&a, &x)| a as f64 * x as f64).sum::<f64>() + b[o] as f64) * scale) as f32)
            .collect();
        m.put("vision.head.query", vec![dv], q);
        m.put("vision.head.kv.weight", vec![dv, 2 * dv], linear_t(&w[dv * dv..], 2 * dv, dv));
        m.put("vision.head.kv.bias", vec![2 * dv], b[dv..].to_vec());
        m.linear(&format!("{h}.attention.out_proj"), "vision.head.out", (dv, dv), true)?;
        m.norm(&format!("{h}.layernorm"), "vision.head.norm", dv)?;
        m.linear(&format!("{h}.mlp.fc1"), "vision.head.mlp.fc1", (dv, c.vision.intermediate_size), true)?;
        m.linear(&format!("{h}.mlp.fc2"), "vision.head.mlp.fc2", (c.vision.intermediate_size, dv), true)?;
    } else if c.outputs != ClipOutputs::Vision {
        m.linear("visual_projection", "vision.projection", (dv, c.projection_dim), false)?;
    }
    if let Some(t) = &c.text {
        let (dt, tm) = (t.tower.hidden_size, "text_model");
        let (v, n) = (t.vocab_size, t.max_position_embeddings);
        m.copy(&format!("{tm}.embeddings.token_embedding.weight"), "text.token_embedding", &[v, dt], vec![v, dt])?;
        m.copy(&format!("{tm}.embeddings.position_embedding.weight"), "text.position_embedding", &[n, dt], vec![n, dt])?;
        encoder(&mut m, tm, "text", &t.tower)?;
        m.norm(&format!("{tm}.final_layer_norm"), "text.final_norm", dt)?;
        if siglip {
            m.linear(&format!("{tm}.head"), "text.head", (dt, c.projection_dim), true)?;
            scalar(&mut m, "logit_bias", "logit_bias")?;
        } else {
            m.linear("text_projection", "text.projection", (dt, c.projection_dim), false)?;
        }
        scalar(&mut m, "logit_scale", "logit_scale")?;
    }
    m.finish(ModelConfig::Clip(c), |name| {
        if name.starts_with("text_model") || name.starts_with("logit") {
            "; the checkpoint holds a text tower: use the full model's config.json (CLIPModel / SiglipModel)".into()
        } else {
            "; check config.json against the checkpoint".into()
        }
    })
}

/// Built-in benchmark presets (synthetic weights) with the published models' sizes.
pub fn preset(name: &str) -> Option<Value> {
    let clip = |patch: usize| {
        serde_json::json!({
            "_name_or_path": name, "model_type": "clip", "architectures": ["CLIPModel"], "projection_dim": 512,
            "text_config": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8,
                "vocab_size": 49408, "max_position_embeddings": 77, "eos_token_id": 49407},
            "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                "image_size": 224, "patch_size": patch}
        })
    };
    Some(match name {
        "clip-vit-base-patch32" => clip(32),
        "clip-vit-base-patch16" => clip(16),
        "siglip-base-patch16-224" => serde_json::json!({
            "_name_or_path": name, "model_type": "siglip", "architectures": ["SiglipModel"],
            "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                "vocab_size": 32000, "max_position_embeddings": 64},
            "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                "image_size": 224, "patch_size": 16}
        }),
        _ => return None,
    })
}
