//! timm VisionTransformer checkpoints -> wgvision model files.
//! Hyperparameters: the kwargs timm's model function passes (recorded from timm into
//! data/timm_vit_presets.json) with `--set` overrides applied on top, then the same
//! defaults `VisionTransformer.__init__` applies.
use crate::kwargs::{bad_option, parse_presets, preset_names, timm_preprocess, Kwargs};
use crate::source::{linear_t, Converted, Source};
use crate::st::Tensor;
use crate::{Result, WeightsError};
use serde_json::{Map, Value};
use std::collections::HashMap;
use wgvision_engine::Activation;
use wgvision_graphs::vit::{GlobalPool, VitConfig};
use wgvision_graphs::ModelConfig;

static PRESETS: &str = include_str!("../data/timm_vit_presets.json");

fn presets() -> Result<Value> {
    parse_presets(PRESETS, "timm ViT")
}

/// Model names this build can convert.
pub fn model_names() -> Vec<String> {
    preset_names(presets())
}

/// Resolve `timm.create_model(name, **overrides)`'s hyperparameters into a config.
pub fn config(name: &str, overrides: &[(String, Value)]) -> Result<VitConfig> {
    let all = presets()?;
    // A pretrained tag ("vit_base_patch16_224.augreg_in21k") names weights, not architecture.
    let arch = name.split('.').next().unwrap_or(name);
    let preset = match all["presets"].get(arch) {
        Some(p) => p,
        None => {
            let hint = match all["unsupported"].get(arch).and_then(Value::as_str) {
                Some(why) => format!(": timm builds it, but wgvision does not support it yet ({why})"),
                None => {
                    let mut close: Vec<String> = model_names()
                        .into_iter()
                        .filter(|n| n.starts_with(arch.get(..arch.len().min(9)).unwrap_or(arch)))
                        .take(6)
                        .collect();
                    close.sort();
                    if close.is_empty() {
                        " (see `wgvision convert --list-models`)".into()
                    } else {
                        format!("; similar names: {}", close.join(", "))
                    }
                }
            };
            return Err(WeightsError::UnknownModel { name: name.to_string(), hint });
        }
    };
    let mut kw: Map<String, Value> = preset["kwargs"].as_object().cloned().unwrap_or_default();
    for (k, v) in overrides {
        kw.insert(k.clone(), v.clone());
    }
    const KNOWN: &[&str] = &[
        "img_size", "patch_size", "in_chans", "num_classes", "global_pool", "embed_dim", "depth", "num_heads",
        "mlp_ratio", "qkv_bias", "qk_norm", "proj_bias", "init_values", "class_token", "pos_embed", "no_embed_class",
        "reg_tokens", "pre_norm", "final_norm", "fc_norm", "dynamic_img_size", "dynamic_img_pad", "drop_rate",
        "pos_drop_rate", "patch_drop_rate", "proj_drop_rate", "attn_drop_rate", "drop_path_rate", "weight_init",
        "fix_init", "embed_norm_layer", "norm_layer", "act_layer",
    ];
    let kw = Kwargs(kw);
    kw.check_known(KNOWN, "VisionTransformer")?;
    let img_size = kw.pair("img_size", 224)?;
    let patch = kw.pair("patch_size", 16)?;
    if patch[0] != patch[1] {
        return Err(WeightsError::Unsupported(format!("non-square patch_size {patch:?}")));
    }
    let patch_size = patch[0];
    if kw.bool("qk_norm", false)? {
        return Err(WeightsError::Unsupported("qk_norm=True".into()));
    }
    if kw.is_set("embed_norm_layer") {
        return Err(WeightsError::Unsupported("embed_norm_layer".into()));
    }
    if kw.bool("dynamic_img_pad", false)? && (img_size[0] % patch_size != 0 || img_size[1] % patch_size != 0) {
        return Err(WeightsError::Unsupported("dynamic_img_pad with an img_size that is not a multiple of patch_size".into()));
    }
    let global_pool = match kw.str("global_pool", "token")?.as_str() {
        "token" => GlobalPool::Token,
        "avg" => GlobalPool::Avg,
        other => return Err(WeightsError::Unsupported(format!("global_pool '{other}' (wgvision supports 'token' and 'avg')"))),
    };
    let class_token = kw.bool("class_token", true)?;
    if global_pool == GlobalPool::Token && !class_token {
        return Err(bad_option("global_pool", "'token' pooling needs class_token=True".into()));
    }
    let use_fc_norm = kw.bool("fc_norm", global_pool == GlobalPool::Avg)?;
    let final_norm = kw.bool("final_norm", true)?;
    let norm_eps = match kw.str("norm_layer", "")?.as_str() {
        "" => 1e-6,
        "layernorm_eps1e-5" | "layernorm" => 1e-5,
        other => return Err(WeightsError::Unsupported(format!("norm_layer '{other}'"))),
    };
    let act = match kw.str("act_layer", "gelu")?.as_str() {
        "gelu" => Activation::Gelu,
        "quick_gelu" => Activation::QuickGelu,
        "gelu_tanh" => Activation::GeluTanh,
        other => return Err(WeightsError::Unsupported(format!("act_layer '{other}' (wgvision supports gelu, quick_gelu, gelu_tanh)"))),
    };
    let pos_embed = match kw.str("pos_embed", "learn")?.as_str() {
        "learn" => true,
        "" | "none" => false,
        other => return Err(bad_option("pos_embed", format!("expected 'learn' or 'none', got '{other}'"))),
    };
    let embed_dim = kw.usize("embed_dim", 768)?;
    let mlp_ratio = kw.ratio("mlp_ratio", 4.0)?;
    let pre_norm = kw.bool("pre_norm", false)?;
    let in_chans = kw.usize("in_chans", 3)?;
    let c = VitConfig {
        name: arch.to_string(),
        img_size,
        patch_size,
        in_chans,
        num_classes: kw.usize("num_classes", 1000)?,
        global_pool,
        embed_dim,
        depth: kw.usize("depth", 12)?,
        num_heads: kw.usize("num_heads", 12)?,
        // timm: int(embed_dim * mlp_ratio)
        mlp_hidden: (embed_dim as f64 * mlp_ratio) as usize,
        qkv_bias: kw.bool("qkv_bias", true)?,
        proj_bias: kw.bool("proj_bias", true)?,
        patch_bias: !pre_norm,
        class_token,
        reg_tokens: kw.usize("reg_tokens", 0)?,
        no_embed_class: kw.bool("no_embed_class", false)?,
        pos_embed,
        pre_norm,
        norm: final_norm && !use_fc_norm,
        fc_norm: final_norm && use_fc_norm,
        norm_eps,
        act,
        layer_scale: kw.is_set("init_values"),
        preprocess: timm_preprocess(&preset["pretrained_cfg"], in_chans, img_size),
    };
    if c.num_heads == 0 || c.embed_dim % c.num_heads != 0 {
        return Err(bad_option("num_heads", format!("embed_dim {} is not divisible by num_heads {}", c.embed_dim, c.num_heads)));
    }
    Ok(c)
}

fn shape_hint(name: &str, got: &[usize]) -> String {
    match name {
        "head.weight" | "head.bias" => format!("; if the checkpoint has {} classes, pass --set num_classes={}", got[0], got[0]),
        "pos_embed" => "; the checkpoint was trained at another img_size or grid: pass --set img_size=...".into(),
        _ => String::new(),
    }
}

/// Map a timm VisionTransformer state dict onto the canonical names of `c`.
pub fn convert(c: &VitConfig, tensors: Vec<Tensor>) -> Result<(ModelConfig, Converted)> {
    let mut src = Source::new(tensors, shape_hint);
    let mut out: Converted = HashMap::new();
    let d = c.embed_dim;
    let m = c.mlp_hidden;
    let p = c.patch_size;
    let cpp = c.in_chans * p * p;
    let mut put = |name: &str, shape: Vec<usize>, data: Vec<f32>| {
        out.insert(name.to_string(), (shape, data));
    };
    // Conv weight [D, C, P, P] flattens to rows of (c, ky, kx), matching patchify.
    let w = src.take("patch_embed.proj.weight", &[d, c.in_chans, p, p])?;
    put("patch_embed.weight", vec![cpp, d], linear_t(&w, d, cpp, None));
    if let Some(b) = src.take_opt("patch_embed.proj.bias", &[d], c.patch_bias)? {
        put("patch_embed.bias", vec![d], b);
    }
    let mut prefix = Vec::new();
    if let Some(cls) = src.take_opt("cls_token", &[1, 1, d], c.class_token)? {
        prefix.extend(cls);
    }
    if let Some(reg) = src.take_opt("reg_token", &[1, c.reg_tokens, d], c.reg_tokens > 0)? {
        prefix.extend(reg);
    }
    if c.num_prefix() > 0 {
        put("prefix_tokens", vec![c.num_prefix(), d], prefix);
    }
    let (gh, gw) = c.grid();
    let embed_len = gh * gw + if c.no_embed_class { 0 } else { c.num_prefix() };
    if let Some(pos) = src.take_opt("pos_embed", &[1, embed_len, d], c.pos_embed)? {
        put("pos_embed", vec![embed_len, d], pos);
    }
    let norm = |src: &mut Source, put: &mut dyn FnMut(&str, Vec<usize>, Vec<f32>), from: &str, to: &str| -> Result<()> {
        put(&format!("{to}.weight"), vec![d], src.take(&format!("{from}.weight"), &[d])?);
        put(&format!("{to}.bias"), vec![d], src.take(&format!("{from}.bias"), &[d])?);
        Ok(())
    };
    if c.pre_norm {
        norm(&mut src, &mut put, "norm_pre", "norm_pre")?;
    }
    // LayerScale (init_values): present in the checkpoint or not; folded into the projection.
    for i in 0..c.depth {
        let b = format!("blocks.{i}");
        norm(&mut src, &mut put, &format!("{b}.norm1"), &format!("{b}.norm1"))?;
        let qkv = src.take(&format!("{b}.attn.qkv.weight"), &[3 * d, d])?;
        put(&format!("{b}.attn.qkv.weight"), vec![d, 3 * d], linear_t(&qkv, 3 * d, d, None));
        if let Some(bias) = src.take_opt(&format!("{b}.attn.qkv.bias"), &[3 * d], c.qkv_bias)? {
            put(&format!("{b}.attn.qkv.bias"), vec![3 * d], bias);
        }
        let ls1 = src.take_opt(&format!("{b}.ls1.gamma"), &[d], c.layer_scale)?;
        let proj = src.take(&format!("{b}.attn.proj.weight"), &[d, d])?;
        put(&format!("{b}.attn.proj.weight"), vec![d, d], linear_t(&proj, d, d, ls1.as_deref()));
        if let Some(mut bias) = src.take_opt(&format!("{b}.attn.proj.bias"), &[d], c.proj_bias)? {
            if let Some(g) = &ls1 {
                bias.iter_mut().zip(g).for_each(|(x, s)| *x *= s);
            }
            put(&format!("{b}.attn.proj.bias"), vec![d], bias);
        }
        norm(&mut src, &mut put, &format!("{b}.norm2"), &format!("{b}.norm2"))?;
        let fc1 = src.take(&format!("{b}.mlp.fc1.weight"), &[m, d])?;
        put(&format!("{b}.mlp.fc1.weight"), vec![d, m], linear_t(&fc1, m, d, None));
        put(&format!("{b}.mlp.fc1.bias"), vec![m], src.take(&format!("{b}.mlp.fc1.bias"), &[m])?);
        let ls2 = src.take_opt(&format!("{b}.ls2.gamma"), &[d], c.layer_scale)?;
        let fc2 = src.take(&format!("{b}.mlp.fc2.weight"), &[d, m])?;
        put(&format!("{b}.mlp.fc2.weight"), vec![m, d], linear_t(&fc2, d, m, ls2.as_deref()));
        let mut bias = src.take(&format!("{b}.mlp.fc2.bias"), &[d])?;
        if let Some(g) = &ls2 {
            bias.iter_mut().zip(g).for_each(|(x, s)| *x *= s);
        }
        put(&format!("{b}.mlp.fc2.bias"), vec![d], bias);
    }
    if c.norm {
        norm(&mut src, &mut put, "norm", "norm")?;
    }
    if c.fc_norm {
        norm(&mut src, &mut put, "fc_norm", "fc_norm")?;
    }
    if c.num_classes > 0 {
        let n = c.num_classes;
        let hw = src.take("head.weight", &[n, d])?;
        put("head.weight", vec![d, n], linear_t(&hw, n, d, None));
        put("head.bias", vec![n], src.take("head.bias", &[n])?);
    }
    src.finish(|name| {
        if name == "head.weight" {
            "; the checkpoint has a classifier head: drop --set num_classes=0".to_string()
        } else if name.contains(".ls1.") || name.contains(".ls2.") {
            "; the checkpoint uses LayerScale: pass --set init_values=1e-5".to_string()
        } else {
            "; check --model and --set against the checkpoint".to_string()
        }
    })?;
    Ok((ModelConfig::Vit(c.clone()), out))
}
