//! transformers OWL-ViT / OWLv2 detection checkpoints (`OwlViTForObjectDetection`,
//! `Owlv2ForObjectDetection`) and their config.json -> wgvision model files. q/k/v are
//! fused, Linear weights transposed, and the logit shift and scale heads stacked into one
//! [D, 2] matmul. (The box bias is a constant of the config, computed at load.)
use crate::kwargs::{bad_option, Kwargs};
use crate::mapper::{self, Conversion, Layout, Mapper};
use crate::st::Tensor;
use crate::{Result, WeightsError};
use serde_json::Value;
use wgvision_graphs::owl::{OwlConfig, Tower};
use wgvision_graphs::{ModelConfig, Preprocess};

pub(crate) const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub(crate) const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

fn tower(kw: &Kwargs, defaults: (usize, usize, usize, usize)) -> Result<Tower> {
    Ok(Tower {
        hidden_size: kw.usize("hidden_size", defaults.0)?,
        num_layers: kw.usize("num_hidden_layers", 12)?,
        num_heads: kw.usize("num_attention_heads", defaults.1)?,
        intermediate_size: kw.usize("intermediate_size", defaults.2)?,
        layer_norm_eps: kw.f64("layer_norm_eps", 1e-5)? as f32,
        act: mapper::activation("hidden_act", &kw.str("hidden_act", "quick_gelu")?)?,
    })
}

/// A transformers OwlViTConfig / Owlv2Config (config.json of the detection model).
pub fn hf_config(json: &Value) -> Result<OwlConfig> {
    let model_type = json["model_type"].as_str().unwrap_or("");
    let v2 = match model_type {
        "owlvit" => false,
        "owlv2" => true,
        other => return Err(WeightsError::Unsupported(format!("config.json model_type '{other}': expected 'owlvit' or 'owlv2'"))),
    };
    let sub = |k: &str| Kwargs(json.get(k).and_then(Value::as_object).cloned().unwrap_or_default());
    let (text, vision, top) = (sub("text_config"), sub("vision_config"), Kwargs(json.as_object().cloned().unwrap_or_default()));
    if vision.usize("num_channels", 3)? != 3 {
        return Err(bad_option("vision_config.num_channels", "only 3-channel images are supported".into()));
    }
    let image_size = vision.usize("image_size", 768)?;
    let c = OwlConfig {
        name: json["_name_or_path"].as_str().filter(|s| !s.is_empty()).unwrap_or(model_type).to_string(),
        v2,
        image_size,
        patch_size: vision.usize("patch_size", 32)?,
        vision: tower(&vision, (768, 12, 3072, 0))?,
        text: tower(&text, (512, 8, 2048, 0))?,
        vocab_size: text.usize("vocab_size", 49408)?,
        max_position_embeddings: text.usize("max_position_embeddings", 16)?,
        projection_dim: top.usize("projection_dim", 512)?,
        // OwlViTImageProcessor resizes to the input size (and center-crops to it);
        // Owlv2ImageProcessor first pads the image to a square at the bottom/right.
        preprocess: Preprocess {
            input_size: [3, image_size, image_size],
            mean: CLIP_MEAN,
            std: CLIP_STD,
            crop_pct: 1.0,
            crop_mode: if v2 { "pad_square" } else { "squash" }.into(),
            interpolation: "bicubic".into(),
        },
    };
    c.check()?;
    Ok(c)
}

fn shape_hint(name: &str, _got: &[usize]) -> String {
    if name.contains("position_embedding") {
        "; the checkpoint was trained at another image_size / patch_size / max_position_embeddings: use its config.json".into()
    } else {
        String::new()
    }
}

/// One CLIP encoder (text or vision tower) `from` -> `to`.
pub(crate) fn encoder(m: &mut Mapper, from: &str, to: &str, t: &Tower) -> Result<()> {
    let (d, f) = (t.hidden_size, t.intermediate_size);
    for i in 0..t.num_layers {
        let (a, b) = (format!("{from}.encoder.layers.{i}"), format!("{to}.layers.{i}"));
        m.norm(&format!("{a}.layer_norm1"), &format!("{b}.norm1"), d)?;
        let qkv = ["q_proj", "k_proj", "v_proj"].map(|p| format!("{a}.self_attn.{p}"));
        m.fuse_qkv(&qkv, &format!("{b}.attn.qkv"), &[d], &[d], true)?;
        m.linear(&format!("{a}.self_attn.out_proj"), &format!("{b}.attn.out"), (d, d), true)?;
        m.norm(&format!("{a}.layer_norm2"), &format!("{b}.norm2"), d)?;
        m.linear(&format!("{a}.mlp.fc1"), &format!("{b}.mlp.fc1"), (d, f), true)?;
        m.linear(&format!("{a}.mlp.fc2"), &format!("{b}.mlp.fc2"), (f, d), true)?;
    }
    Ok(())
}

/// Map an OWL-ViT / OWLv2 detection state dict onto the canonical names of `c`.
pub fn convert(c: OwlConfig, tensors: Vec<Tensor>) -> Result<Conversion> {
    let mut m = Mapper::new(tensors, Layout::Torch, shape_hint);
    let o = if c.v2 { "owlv2" } else { "owlvit" };
    let other = if c.v2 { "owlvit" } else { "owlv2" };
    if !m.contains(&format!("{o}.text_model.final_layer_norm.weight")) && m.contains(&format!("{other}.text_model.final_layer_norm.weight")) {
        return Err(WeightsError::Unsupported(format!(
            "the checkpoint holds {other}.* tensors but config.json says model_type '{o}': use the checkpoint's own config.json"
        )));
    }
    // Not used by detection: the CLIP image projection and contrastive temperature.
    m.discard(|k| k == format!("{o}.visual_projection.weight") || k == format!("{o}.logit_scale") || k.ends_with("position_ids"));
    // Text tower.
    let (dt, dv, p) = (c.text.hidden_size, c.vision.hidden_size, c.patch_size);
    let tm = format!("{o}.text_model");
    let vocab = c.vocab_size;
    m.copy(&format!("{tm}.embeddings.token_embedding.weight"), "text.token_embedding", &[vocab, dt], vec![vocab, dt])?;
    let npos = c.max_position_embeddings;
    m.copy(&format!("{tm}.embeddings.position_embedding.weight"), "text.position_embedding", &[npos, dt], vec![npos, dt])?;
    encoder(&mut m, &tm, "text", &c.text)?;
    m.norm(&format!("{tm}.final_layer_norm"), "text.final_norm", dt)?;
    m.linear(&format!("{o}.text_projection"), "text.projection", (dt, c.projection_dim), false)?;
    // Image tower.
    let vm = format!("{o}.vision_model");
    m.copy(&format!("{vm}.embeddings.class_embedding"), "vision.class_embedding", &[dv], vec![1, dv])?;
    m.linear_dims(&format!("{vm}.embeddings.patch_embedding"), "vision.patch_embedding", &[3, p, p], &[dv], false)?;
    let np = c.patches();
    m.copy(&format!("{vm}.embeddings.position_embedding.weight"), "vision.position_embedding", &[np + 1, dv], vec![np + 1, dv])?;
    m.norm(&format!("{vm}.pre_layernorm"), "vision.pre_norm", dv)?;
    encoder(&mut m, &vm, "vision", &c.vision)?;
    m.norm(&format!("{vm}.post_layernorm"), "vision.post_norm", dv)?;
    m.norm("layer_norm", "layer_norm", dv)?;
    // Heads.
    m.linear("class_head.dense0", "class_head.dense0", (dv, dt), true)?;
    let shift = m.take("class_head.logit_shift.weight", &[1, dv])?;
    let scale = m.take("class_head.logit_scale.weight", &[1, dv])?;
    let ss: Vec<f32> = shift.iter().zip(&scale).flat_map(|(&s, &k)| [s, k]).collect();
    m.put("class_head.shift_scale.weight", vec![dv, 2], ss);
    let mut bs = m.take("class_head.logit_shift.bias", &[1])?;
    bs.extend(m.take("class_head.logit_scale.bias", &[1])?);
    m.put("class_head.shift_scale.bias", vec![2], bs);
    let mut heads = vec![("box_head", 4)];
    if c.v2 {
        heads.push(("objectness_head", 1));
    }
    for (h, n) in heads {
        m.linear(&format!("{h}.dense0"), &format!("{h}.dense0"), (dv, dv), true)?;
        m.linear(&format!("{h}.dense1"), &format!("{h}.dense1"), (dv, dv), true)?;
        m.linear(&format!("{h}.dense2"), &format!("{h}.dense2"), (dv, n), true)?;
    }
    m.finish(ModelConfig::Owl(c), |name| {
        if name.starts_with("objectness_head") {
            "; this is an OWLv2 checkpoint: use its config.json (model_type 'owlv2')".into()
        } else {
            "; check config.json against the checkpoint".into()
        }
    })
}

/// Built-in benchmark presets (synthetic weights) with the published base models' sizes.
pub fn preset(name: &str) -> Option<Value> {
    let (model_type, image_size, patch_size) = match name {
        "owlvit-base-patch32" => ("owlvit", 768, 32),
        "owlvit-base-patch16" => ("owlvit", 768, 16),
        "owlv2-base-patch16" => ("owlv2", 960, 16),
        _ => return None,
    };
    Some(serde_json::json!({
        "_name_or_path": name, "model_type": model_type, "projection_dim": 512,
        "text_config": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8,
            "vocab_size": 49408, "max_position_embeddings": 16, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
        "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
            "image_size": image_size, "patch_size": patch_size, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
    }))
}
