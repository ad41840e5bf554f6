//! Swin checkpoints (timm `SwinTransformer`, transformers `SwinModel` /
//! `SwinForImageClassification`) -> wgvision model files. q/k/v are fused, Linear weights
//! transposed to [in, out], and each block's relative-position bias table is gathered
//! into the dense [heads, N, N] bias its window attention adds.
use crate::kwargs::{bad_option, pair_of, Kwargs};
use crate::mapper::{self, Conversion, Layout, Mapper};
use crate::st::Tensor;
use crate::{Result, WeightsError};
use serde_json::Value;
use wgvision_engine::Activation;
use wgvision_graphs::swin::{Origin, Stage, SwinConfig};
use wgvision_graphs::{ModelConfig, Preprocess};

static TIMM_PRESETS: &str = include_str!("../data/timm_swin_presets.json");

/// timm Swin model names this build can convert.
pub fn model_names() -> Vec<String> {
    mapper::preset_names(TIMM_PRESETS, "Swin")
}

fn imagenet_preprocess(size: [usize; 2], in_chans: usize, crop_pct: f32, crop_mode: &str) -> Preprocess {
    Preprocess {
        input_size: [in_chans, size[0], size[1]],
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        crop_pct,
        crop_mode: crop_mode.to_string(),
        interpolation: "bicubic".into(),
    }
}

/// Per-stage window sizes from an int, an [h, w] pair, or a list with one per stage.
fn windows(v: Option<&Value>, stages: usize, default: usize) -> Option<Vec<[usize; 2]>> {
    match v {
        None => Some(vec![[default; 2]; stages]),
        Some(Value::Array(a)) if a.len() == stages && a.iter().all(|x| x.is_array()) => a.iter().map(pair_of).collect(),
        Some(v) => pair_of(v).map(|p| vec![p; stages]),
    }
}

/// `timm.create_model(name, **overrides)`'s hyperparameters.
pub fn timm_config(name: &str, overrides: &[(String, Value)]) -> Result<SwinConfig> {
    let preset = mapper::timm_preset(TIMM_PRESETS, "Swin", name, overrides, mapper::top_level)?;
    let kw = Kwargs(preset.kwargs);
    const KNOWN: &[&str] = &[
        "img_size", "patch_size", "in_chans", "num_classes", "global_pool", "embed_dim", "depths", "num_heads", "head_dim",
        "window_size", "always_partition", "strict_img_size", "mlp_ratio", "qkv_bias", "drop_rate", "proj_drop_rate",
        "attn_drop_rate", "drop_path_rate", "norm_layer", "weight_init",
    ];
    kw.check_known(KNOWN, "SwinTransformer")?;
    if kw.str("global_pool", "avg")? != "avg" {
        return Err(WeightsError::Unsupported("global_pool '' (unpooled NHWC features); wgvision supports 'avg'".into()));
    }
    if kw.str("norm_layer", "layernorm")? != "layernorm" {
        return Err(WeightsError::Unsupported("norm_layer other than LayerNorm".into()));
    }
    if kw.raw("embed_dim").is_some_and(Value::is_array) {
        return Err(WeightsError::Unsupported("a list of per-stage embed_dim".into()));
    }
    let depths = kw.usizes("depths", &[2, 2, 6, 2])?;
    let n = depths.len();
    let num_heads = kw.usizes("num_heads", &[3, 6, 12, 24])?;
    let window_size = windows(kw.raw("window_size"), n, 7).ok_or_else(|| bad_option("window_size", "expected an int, [h, w], or one [h, w] per stage".into()))?;
    let img_size = kw.pair("img_size", 224)?;
    let in_chans = kw.usize("in_chans", 3)?;
    let cfg = &preset.pretrained_cfg;
    let mut pre = imagenet_preprocess(img_size, in_chans, cfg["crop_pct"].as_f64().unwrap_or(0.9) as f32, cfg["crop_mode"].as_str().unwrap_or("center"));
    if let Some(i) = cfg["interpolation"].as_str() {
        pre.interpolation = i.to_string();
    }
    let c = SwinConfig {
        name: preset.arch,
        origin: Origin::Timm,
        img_size,
        patch_size: kw.usize("patch_size", 4)?,
        in_chans,
        num_classes: kw.usize("num_classes", 1000)?,
        embed_dim: kw.usize("embed_dim", 96)?,
        depths,
        num_heads,
        head_dim: kw.opt_usize("head_dim")?,
        window_size,
        always_partition: kw.bool("always_partition", false)?,
        mlp_ratio: kw.ratio("mlp_ratio", 4.0)? as f32,
        qkv_bias: kw.bool("qkv_bias", true)?,
        norm_eps: 1e-5,
        act: Activation::Gelu,
        preprocess: pre,
    };
    c.stages()?;
    Ok(c)
}

/// A transformers `SwinConfig` (config.json of SwinModel or SwinForImageClassification).
pub fn hf_config(json: &Value) -> Result<SwinConfig> {
    let model_type = json["model_type"].as_str().unwrap_or("");
    if model_type != "swin" {
        return Err(WeightsError::Unsupported(format!(
            "config.json model_type '{model_type}': --from hf converts 'vit' (ViTForImageClassification), 'deit' (DeiTForImageClassification), 'swin' (SwinModel, SwinForImageClassification), 'owlvit' and 'owlv2' (detection)"
        )));
    }
    let kw = Kwargs(json.as_object().cloned().unwrap_or_default());
    if kw.bool("use_absolute_embeddings", false)? {
        return Err(WeightsError::Unsupported("use_absolute_embeddings=true (transformers' own forward cannot add them without interpolation)".into()));
    }
    let depths = kw.usizes("depths", &[2, 2, 6, 2])?;
    let n = depths.len();
    let ws = kw.usize("window_size", 7)?;
    let act = mapper::activation("hidden_act", &kw.str("hidden_act", "gelu")?)?;
    let archs: Vec<&str> = json["architectures"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let classifier = archs.contains(&"SwinForImageClassification");
    let num_classes = if classifier {
        json["id2label"].as_object().map(|m| m.len()).or(json["num_labels"].as_u64().map(|x| x as usize)).unwrap_or(2)
    } else {
        0
    };
    let img_size = kw.pair("image_size", 224)?;
    let in_chans = kw.usize("num_channels", 3)?;
    let c = SwinConfig {
        name: json["_name_or_path"].as_str().filter(|s| !s.is_empty()).unwrap_or(if classifier { "SwinForImageClassification" } else { "SwinModel" }).to_string(),
        origin: Origin::Hf,
        img_size,
        patch_size: kw.usize("patch_size", 4)?,
        in_chans,
        num_classes,
        embed_dim: kw.usize("embed_dim", 96)?,
        depths,
        num_heads: kw.usizes("num_heads", &[3, 6, 12, 24])?,
        head_dim: None,
        window_size: vec![[ws, ws]; n],
        always_partition: false,
        mlp_ratio: kw.ratio("mlp_ratio", 4.0)? as f32,
        qkv_bias: kw.bool("qkv_bias", true)?,
        norm_eps: kw.f64("layer_norm_eps", 1e-5)? as f32,
        act,
        // transformers' ViTImageProcessor for Swin: resize to the input size, no crop.
        preprocess: imagenet_preprocess(img_size, in_chans, 1.0, "squash"),
    };
    c.stages()?;
    Ok(c)
}

/// [(2wh-1)(2ww-1), heads] table -> [heads, N, N] bias, as timm's and transformers'
/// relative_position_index gathers it.
pub(crate) fn gather_rel_bias(table: &[f32], heads: usize, [wh, ww]: [usize; 2]) -> Vec<f32> {
    let n = wh * ww;
    let mut out = vec![0.0; heads * n * n];
    for i in 0..n {
        for j in 0..n {
            let dy = (i / ww) as isize - (j / ww) as isize + wh as isize - 1;
            let dx = (i % ww) as isize - (j % ww) as isize + ww as isize - 1;
            let idx = dy as usize * (2 * ww - 1) + dx as usize;
            for h in 0..heads {
                out[(h * n + i) * n + j] = table[idx * heads + h];
            }
        }
    }
    out
}

/// How a block's attention input projection is stored.
enum Qkv {
    /// One fused Linear (timm).
    Fused(String),
    /// Separate q, k, v Linears (transformers), fused on conversion.
    Split([String; 3]),
}

/// The peer's names for one block's tensors.
struct Names {
    norm1: String,
    qkv: Qkv,
    table: String,
    proj: String,
    norm2: String,
    fc1: String,
    fc2: String,
}

fn shape_hint(name: &str, got: &[usize]) -> String {
    if name.ends_with("relative_position_bias_table") {
        "; the checkpoint was trained with another window_size or img_size: pass the matching --set window_size=... / img_size=...".into()
    } else if name.contains("head") || name.starts_with("classifier") {
        let n = got.first().unwrap_or(&0);
        format!("; if the checkpoint has {n} classes, pass --set num_classes={n}")
    } else {
        String::new()
    }
}

/// Map a timm or transformers Swin state dict onto the canonical names of `c`.
pub fn convert(c: SwinConfig, tensors: Vec<Tensor>) -> Result<Conversion> {
    let stages = c.stages()?;
    let mut m = Mapper::new(tensors, Layout::Torch, shape_hint);
    // Derived buffers, not parameters.
    m.discard(|k| k.ends_with("relative_position_index") || k.ends_with("attn_mask"));
    let hf = c.origin == Origin::Hf;
    // transformers: SwinForImageClassification prefixes the backbone with "swin.".
    let pre = if hf && m.contains("swin.embeddings.norm.weight") { "swin." } else { "" };
    let (p, d0) = (c.patch_size, c.embed_dim);
    let (pw, pnorm) = if hf {
        (format!("{pre}embeddings.patch_embeddings.projection"), format!("{pre}embeddings.norm"))
    } else {
        ("patch_embed.proj".to_string(), "patch_embed.norm".to_string())
    };
    m.linear_dims(&pw, "patch_embed", &[c.in_chans, p, p], &[d0], true)?;
    m.norm(&pnorm, "patch_embed.norm", d0)?;
    for (i, st) in stages.iter().enumerate() {
        if i > 0 {
            let prev: &Stage = &stages[i - 1];
            // timm: the merge opens stage i; transformers: it closes stage i-1.
            let from = if hf { format!("{pre}encoder.layers.{}.downsample", i - 1) } else { format!("layers.{i}.downsample") };
            let to = format!("layers.{i}.downsample");
            m.norm(&format!("{from}.norm"), &format!("{to}.norm"), 4 * prev.dim)?;
            m.linear(&format!("{from}.reduction"), &format!("{to}.reduction"), (4 * prev.dim, st.dim), false)?;
        }
        let (d, a, heads) = (st.dim, st.heads * st.head_dim, st.heads);
        for j in 0..c.depths[i] {
            let layout = if j % 2 == 1 { &st.shifted } else { &st.regular };
            let to = format!("layers.{i}.blocks.{j}");
            let names = if hf {
                let b = format!("{pre}encoder.layers.{i}.blocks.{j}");
                let s = format!("{b}.attention.self");
                // Older transformers: query/key/value; newer: q_proj/k_proj/v_proj.
                let q = if m.contains(&format!("{s}.q_proj.weight")) {
                    [format!("{s}.q_proj"), format!("{s}.k_proj"), format!("{s}.v_proj")]
                } else {
                    [format!("{s}.query"), format!("{s}.key"), format!("{s}.value")]
                };
                let proj = if m.contains(&format!("{b}.attention.output.dense.weight")) {
                    format!("{b}.attention.output.dense")
                } else {
                    format!("{s}.o_proj")
                };
                Names {
                    norm1: format!("{b}.layernorm_before"),
                    qkv: Qkv::Split(q),
                    table: format!("{s}.relative_position_bias_table"),
                    proj,
                    norm2: format!("{b}.layernorm_after"),
                    fc1: format!("{b}.intermediate.dense"),
                    fc2: format!("{b}.output.dense"),
                }
            } else {
                let b = format!("layers.{i}.blocks.{j}");
                Names {
                    norm1: format!("{b}.norm1"),
                    qkv: Qkv::Fused(format!("{b}.attn.qkv")),
                    table: format!("{b}.attn.relative_position_bias_table"),
                    proj: format!("{b}.attn.proj"),
                    norm2: format!("{b}.norm2"),
                    fc1: format!("{b}.mlp.fc1"),
                    fc2: format!("{b}.mlp.fc2"),
                }
            };
            m.norm(&names.norm1, &format!("{to}.norm1"), d)?;
            match &names.qkv {
                Qkv::Fused(qkv) => m.linear(qkv, &format!("{to}.attn.qkv"), (d, 3 * a), c.qkv_bias)?,
                Qkv::Split(qs) => m.fuse_qkv(qs, &format!("{to}.attn.qkv"), &[d], &[a], c.qkv_bias)?,
            }
            let [wh, ww] = layout.window;
            let table = m.take(&names.table, &[(2 * wh - 1) * (2 * ww - 1), heads])?;
            m.put(format!("{to}.attn.rel_bias"), vec![heads, wh * ww, wh * ww], gather_rel_bias(&table, heads, layout.window));
            m.linear(&names.proj, &format!("{to}.attn.proj"), (a, d), true)?;
            m.norm(&names.norm2, &format!("{to}.norm2"), d)?;
            let hidden = (d as f32 * c.mlp_ratio) as usize;
            m.linear(&names.fc1, &format!("{to}.mlp.fc1"), (d, hidden), true)?;
            m.linear(&names.fc2, &format!("{to}.mlp.fc2"), (hidden, d), true)?;
        }
    }
    let dl = c.num_features();
    m.norm(&(if hf { format!("{pre}layernorm") } else { "norm".into() }), "norm", dl)?;
    if c.num_classes > 0 {
        m.linear(if hf { "classifier" } else { "head.fc" }, "head", (dl, c.num_classes), true)?;
    }
    m.finish(ModelConfig::Swin(c), |name| {
        if name.starts_with("head") || name.starts_with("classifier") {
            "; the checkpoint has a classifier head: set num_classes (timm) or use SwinForImageClassification's config".into()
        } else {
            "; check the model options against the checkpoint".into()
        }
    })
}
