//! transformers OWL-ViT / OWLv2 detection checkpoints (`OwlViTForObjectDetection`,
//! `Owlv2ForObjectDetection`) and their config.json -> wgvision model files. q/k/v are
//! fused, Linear weights transposed, and the logit shift and scale heads stacked into one
//! [D, 2] matmul. (The box bias is a constant of the config, computed at load.)
use crate::kwargs::{bad_option, Kwargs};
use crate::source::{linear_t, Converted, Source};
use crate::st::Tensor;
use crate::{Result, WeightsError};
use serde_json::Value;
use wgvision_engine::Activation;
use wgvision_graphs::owl::{OwlConfig, Tower};
use wgvision_graphs::{ModelConfig, Preprocess};

const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

fn act(name: &str) -> Result<Activation> {
    Ok(match name {
        "quick_gelu" => Activation::QuickGelu,
        "gelu" => Activation::Gelu,
        "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
        "relu" => Activation::Relu,
        other => return Err(WeightsError::Unsupported(format!("hidden_act '{other}'"))),
    })
}

fn tower(kw: &Kwargs, defaults: (usize, usize, usize, usize)) -> Result<Tower> {
    Ok(Tower {
        hidden_size: kw.usize("hidden_size", defaults.0)?,
        num_layers: kw.usize("num_hidden_layers", 12)?,
        num_heads: kw.usize("num_attention_heads", defaults.1)?,
        intermediate_size: kw.usize("intermediate_size", defaults.2)?,
        layer_norm_eps: kw.f64("layer_norm_eps", 1e-5)? as f32,
        act: act(&kw.str("hidden_act", "quick_gelu")?)?,
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

/// Stores one converted tensor (name, shape, data).
type Put<'a> = dyn FnMut(&str, Vec<usize>, Vec<f32>) + 'a;

fn shape_hint(name: &str, _got: &[usize]) -> String {
    if name.contains("position_embedding") {
        "; the checkpoint was trained at another image_size / patch_size / max_position_embeddings: use its config.json".into()
    } else {
        String::new()
    }
}

/// Map an OWL-ViT / OWLv2 detection state dict onto the canonical names of `c`.
pub fn convert(c: &OwlConfig, tensors: Vec<Tensor>) -> Result<(ModelConfig, Converted)> {
    let mut src = Source::new(tensors, shape_hint);
    let m = if c.v2 { "owlv2" } else { "owlvit" };
    let other = if c.v2 { "owlvit" } else { "owlv2" };
    if !src.contains(&format!("{m}.text_model.final_layer_norm.weight")) && src.contains(&format!("{other}.text_model.final_layer_norm.weight")) {
        return Err(WeightsError::Unsupported(format!(
            "the checkpoint holds {other}.* tensors but config.json says model_type '{m}': use the checkpoint's own config.json"
        )));
    }
    // Not used by detection: the CLIP image projection and contrastive temperature.
    src.discard(|k| k == format!("{m}.visual_projection.weight") || k == format!("{m}.logit_scale") || k.ends_with("position_ids"));
    let mut out = Converted::new();
    let mut put = |name: &str, shape: Vec<usize>, data: Vec<f32>| {
        out.insert(name.to_string(), (shape, data));
    };
    let linear = |src: &mut Source, put: &mut Put, from: &str, to: &str, (i, o): (usize, usize), bias: bool| -> Result<()> {
        let w = src.take(&format!("{from}.weight"), &[o, i])?;
        put(&format!("{to}.weight"), vec![i, o], linear_t(&w, o, i, None));
        if bias {
            put(&format!("{to}.bias"), vec![o], src.take(&format!("{from}.bias"), &[o])?);
        }
        Ok(())
    };
    let norm = |src: &mut Source, put: &mut Put, from: &str, to: &str, d: usize| -> Result<()> {
        put(&format!("{to}.weight"), vec![d], src.take(&format!("{from}.weight"), &[d])?);
        put(&format!("{to}.bias"), vec![d], src.take(&format!("{from}.bias"), &[d])?);
        Ok(())
    };
    let encoder = |src: &mut Source, put: &mut Put, from: &str, to: &str, t: &Tower| -> Result<()> {
        let (d, f) = (t.hidden_size, t.intermediate_size);
        for i in 0..t.num_layers {
            let (a, b) = (format!("{from}.encoder.layers.{i}"), format!("{to}.layers.{i}"));
            norm(src, put, &format!("{a}.layer_norm1"), &format!("{b}.norm1"), d)?;
            let mut w = Vec::with_capacity(3 * d * d);
            let mut bias = Vec::with_capacity(3 * d);
            for proj in ["q_proj", "k_proj", "v_proj"] {
                w.extend(src.take(&format!("{a}.self_attn.{proj}.weight"), &[d, d])?);
                bias.extend(src.take(&format!("{a}.self_attn.{proj}.bias"), &[d])?);
            }
            put(&format!("{b}.attn.qkv.weight"), vec![d, 3 * d], linear_t(&w, 3 * d, d, None));
            put(&format!("{b}.attn.qkv.bias"), vec![3 * d], bias);
            let ow = src.take(&format!("{a}.self_attn.out_proj.weight"), &[d, d])?;
            put(&format!("{b}.attn.out.weight"), vec![d, d], linear_t(&ow, d, d, None));
            put(&format!("{b}.attn.out.bias"), vec![d], src.take(&format!("{a}.self_attn.out_proj.bias"), &[d])?);
            norm(src, put, &format!("{a}.layer_norm2"), &format!("{b}.norm2"), d)?;
            for (fc, (i_, o_)) in [("fc1", (d, f)), ("fc2", (f, d))] {
                let w = src.take(&format!("{a}.mlp.{fc}.weight"), &[o_, i_])?;
                put(&format!("{b}.mlp.{fc}.weight"), vec![i_, o_], linear_t(&w, o_, i_, None));
                put(&format!("{b}.mlp.{fc}.bias"), vec![o_], src.take(&format!("{a}.mlp.{fc}.bias"), &[o_])?);
            }
        }
        Ok(())
    };
    // Text tower.
    let (dt, dv, p) = (c.text.hidden_size, c.vision.hidden_size, c.patch_size);
    let tm = format!("{m}.text_model");
    put("text.token_embedding", vec![c.vocab_size, dt], src.take(&format!("{tm}.embeddings.token_embedding.weight"), &[c.vocab_size, dt])?);
    let npos = c.max_position_embeddings;
    put("text.position_embedding", vec![npos, dt], src.take(&format!("{tm}.embeddings.position_embedding.weight"), &[npos, dt])?);
    encoder(&mut src, &mut put, &tm, "text", &c.text)?;
    norm(&mut src, &mut put, &format!("{tm}.final_layer_norm"), "text.final_norm", dt)?;
    linear(&mut src, &mut put, &format!("{m}.text_projection"), "text.projection", (dt, c.projection_dim), false)?;
    // Image tower.
    let vm = format!("{m}.vision_model");
    put("vision.class_embedding", vec![1, dv], src.take(&format!("{vm}.embeddings.class_embedding"), &[dv])?);
    let w = src.take(&format!("{vm}.embeddings.patch_embedding.weight"), &[dv, 3, p, p])?;
    put("vision.patch_embedding.weight", vec![3 * p * p, dv], linear_t(&w, dv, 3 * p * p, None));
    let np = c.patches();
    put("vision.position_embedding", vec![np + 1, dv], src.take(&format!("{vm}.embeddings.position_embedding.weight"), &[np + 1, dv])?);
    norm(&mut src, &mut put, &format!("{vm}.pre_layernorm"), "vision.pre_norm", dv)?;
    encoder(&mut src, &mut put, &vm, "vision", &c.vision)?;
    norm(&mut src, &mut put, &format!("{vm}.post_layernorm"), "vision.post_norm", dv)?;
    norm(&mut src, &mut put, "layer_norm", "layer_norm", dv)?;
    // Heads.
    linear(&mut src, &mut put, "class_head.dense0", "class_head.dense0", (dv, dt), true)?;
    let shift = src.take("class_head.logit_shift.weight", &[1, dv])?;
    let scale = src.take("class_head.logit_scale.weight", &[1, dv])?;
    let ss: Vec<f32> = (0..dv).flat_map(|i| [shift[i], scale[i]]).collect();
    put("class_head.shift_scale.weight", vec![dv, 2], ss);
    let bs = [src.take("class_head.logit_shift.bias", &[1])?[0], src.take("class_head.logit_scale.bias", &[1])?[0]];
    put("class_head.shift_scale.bias", vec![2], bs.to_vec());
    let mut heads = vec![("box_head", 4)];
    if c.v2 {
        heads.push(("objectness_head", 1));
    }
    for (h, o) in heads {
        linear(&mut src, &mut put, &format!("{h}.dense0"), &format!("{h}.dense0"), (dv, dv), true)?;
        linear(&mut src, &mut put, &format!("{h}.dense1"), &format!("{h}.dense1"), (dv, dv), true)?;
        linear(&mut src, &mut put, &format!("{h}.dense2"), &format!("{h}.dense2"), (dv, o), true)?;
    }
    src.finish(|name| {
        if name.starts_with("objectness_head") {
            "; this is an OWLv2 checkpoint: use its config.json (model_type 'owlv2')".into()
        } else {
            "; check config.json against the checkpoint".into()
        }
    })?;
    Ok((ModelConfig::Owl(c.clone()), out))
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
