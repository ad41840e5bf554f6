//! transformers ViT (`ViTForImageClassification`, model_type "vit") and DeiT
//! (`DeiTForImageClassification`, "deit": a distillation token after the class token,
//! which the classifier does not read) onto the ViT graph: the same pre-norm blocks as
//! timm's VisionTransformer, under transformers' tensor names (q/k/v fused into one
//! projection) and its config.json.
use crate::kwargs::Kwargs;
use crate::mapper::{self, Conversion, Layout, Mapper};
use crate::st::Tensor;
use crate::{Result, WeightsError};
use serde_json::Value;
use wgvision_graphs::vit::{GlobalPool, VitConfig};
use wgvision_graphs::{ModelConfig, Preprocess};

/// A transformers `ViTConfig` of a `ViTForImageClassification` checkpoint.
pub fn config(json: &Value) -> Result<VitConfig> {
    let archs: Vec<&str> = json["architectures"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let deit = json["model_type"] == "deit";
    let class = if deit { "DeiTForImageClassification" } else { "ViTForImageClassification" };
    // ViTModel: last_hidden_state and pooler_output instead of logits.
    let base = !deit && archs.contains(&"ViTModel");
    if !archs.is_empty() && !archs.contains(&class) && !base {
        return Err(WeightsError::Unsupported(format!(
            "transformers {} architectures {archs:?}: --from hf converts {class}{}; DeiTModel and DeiT's averaged teacher head are not supported yet",
            if deit { "DeiT" } else { "ViT" },
            if deit { "" } else { " and ViTModel" }
        )));
    }
    let kw = Kwargs(json.as_object().cloned().unwrap_or_default());
    let img_size = kw.pair("image_size", 224)?;
    let patch = kw.pair("patch_size", 16)?;
    if patch[0] != patch[1] {
        return Err(WeightsError::Unsupported(format!("non-square patch_size {patch:?}")));
    }
    let embed_dim = kw.usize("hidden_size", 768)?;
    let num_heads = kw.usize("num_attention_heads", 12)?;
    if num_heads == 0 || !embed_dim.is_multiple_of(num_heads) {
        return Err(crate::kwargs::bad_option("num_attention_heads", format!("hidden_size {embed_dim} is not divisible by {num_heads}")));
    }
    let num_classes = if base { 0 } else { json["id2label"].as_object().map(|m| m.len()).or(json["num_labels"].as_u64().map(|x| x as usize)).unwrap_or(2) };
    let in_chans = kw.usize("num_channels", 3)?;
    Ok(VitConfig {
        name: json["_name_or_path"].as_str().filter(|s| !s.is_empty()).unwrap_or(class).to_string(),
        img_size,
        patch_size: patch[0],
        in_chans,
        num_classes,
        global_pool: GlobalPool::Token,
        embed_dim,
        depth: kw.usize("num_hidden_layers", 12)?,
        num_heads,
        mlp_hidden: kw.usize("intermediate_size", 3072)?,
        qkv_bias: kw.bool("qkv_bias", true)?,
        proj_bias: true,
        patch_bias: true,
        class_token: true,
        // DeiT's distillation token: a second prefix token, in the position embedding,
        // read by no head here.
        reg_tokens: deit as usize,
        no_embed_class: false,
        pos_embed: true,
        pre_norm: false,
        norm: true,
        fc_norm: false,
        norm_eps: kw.f64("layer_norm_eps", 1e-12)? as f32,
        act: mapper::activation("hidden_act", &kw.str("hidden_act", "gelu")?)?,
        layer_scale: false,
        // ViTImageProcessor's defaults: resize to the input size (bilinear), no crop,
        // mean = std = 0.5.
        preprocess: Preprocess {
            input_size: [in_chans, img_size[0], img_size[1]],
            mean: [0.5; 3],
            std: [0.5; 3],
            crop_pct: 1.0,
            crop_mode: "squash".into(),
            interpolation: "bilinear".into(),
        },
        hf_model_outputs: base,
    })
}

fn shape_hint(name: &str, got: &[usize]) -> String {
    match name {
        "classifier.weight" | "classifier.bias" => format!("; the checkpoint has {} classes: check id2label / num_labels", got.first().unwrap_or(&0)),
        "vit.embeddings.position_embeddings" | "deit.embeddings.position_embeddings" | "embeddings.position_embeddings" => "; the checkpoint was trained at another image_size".into(),
        _ => String::new(),
    }
}

/// Map a `ViTForImageClassification` / `DeiTForImageClassification` state dict onto the
/// ViT graph's canonical names.
pub fn convert(c: VitConfig, tensors: Vec<Tensor>) -> Result<Conversion> {
    let mut m = Mapper::new(tensors, Layout::Torch, shape_hint);
    let (d, h, p) = (c.embed_dim, c.mlp_hidden, c.patch_size);
    // ViTModel's names have no prefix; the heads' models nest it under vit. / deit.
    let root = match (c.hf_model_outputs, c.reg_tokens == 1) {
        (true, _) => "",
        (false, true) => "deit.",
        (false, false) => "vit.",
    };
    let e = format!("{root}embeddings");
    m.linear_dims(&format!("{e}.patch_embeddings.projection"), "patch_embed", &[c.in_chans, p, p], &[d], true)?;
    let mut prefix = m.take(&format!("{e}.cls_token"), &[1, 1, d])?;
    if c.reg_tokens == 1 {
        prefix.extend(m.take(&format!("{e}.distillation_token"), &[1, 1, d])?);
    }
    m.put("prefix_tokens", vec![c.num_prefix(), d], prefix);
    let (gh, gw) = c.grid();
    let len = gh * gw + c.num_prefix();
    m.copy(&format!("{e}.position_embeddings"), "pos_embed", &[1, len, d], vec![len, d])?;
    for i in 0..c.depth {
        let (l, b) = (format!("{root}encoder.layer.{i}"), format!("blocks.{i}"));
        m.norm(&format!("{l}.layernorm_before"), &format!("{b}.norm1"), d)?;
        let qkv = ["query", "key", "value"].map(|x| format!("{l}.attention.attention.{x}"));
        m.fuse_qkv(&qkv, &format!("{b}.attn.qkv"), &[d], &[d], c.qkv_bias)?;
        m.linear(&format!("{l}.attention.output.dense"), &format!("{b}.attn.proj"), (d, d), true)?;
        m.norm(&format!("{l}.layernorm_after"), &format!("{b}.norm2"), d)?;
        m.linear(&format!("{l}.intermediate.dense"), &format!("{b}.mlp.fc1"), (d, h), true)?;
        m.linear(&format!("{l}.output.dense"), &format!("{b}.mlp.fc2"), (h, d), true)?;
    }
    m.norm(&format!("{root}layernorm"), "norm", d)?;
    if c.hf_model_outputs {
        m.linear("pooler.dense", "pooler", (d, d), true)?;
    } else {
        m.linear("classifier", "head", (d, c.num_classes), true)?;
    }
    m.finish(ModelConfig::Vit(c), |_| "; check config.json against the checkpoint (num_hidden_layers, ViTForImageClassification)".to_string())
}
