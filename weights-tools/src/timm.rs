//! timm VisionTransformer checkpoints -> wgvision model files.
//! Hyperparameters: the kwargs timm's model function passes (recorded from timm into
//! data/timm_vit_presets.json) with `--set` overrides applied on top, then the same
//! defaults `VisionTransformer.__init__` applies.
use crate::kwargs::{bad_option, timm_preprocess, Kwargs};
use crate::mapper::{self, Conversion, Layout, Mapper};
use crate::st::Tensor;
use crate::{Result, WeightsError};
use serde_json::Value;
use wgvision_graphs::vit::{GlobalPool, VitConfig};
use wgvision_graphs::ModelConfig;

static PRESETS: &str = include_str!("../data/timm_vit_presets.json");

/// Model names this build can convert.
pub fn model_names() -> Vec<String> {
    mapper::preset_names(PRESETS, "ViT")
}

/// Resolve `timm.create_model(name, **overrides)`'s hyperparameters into a config.
pub fn config(name: &str, overrides: &[(String, Value)]) -> Result<VitConfig> {
    let preset = mapper::timm_preset(PRESETS, "ViT", name, overrides, mapper::top_level)?;
    let arch = preset.arch;
    const KNOWN: &[&str] = &[
        "img_size", "patch_size", "in_chans", "num_classes", "global_pool", "embed_dim", "depth", "num_heads",
        "mlp_ratio", "qkv_bias", "qk_norm", "proj_bias", "init_values", "class_token", "pos_embed", "no_embed_class",
        "reg_tokens", "pre_norm", "final_norm", "fc_norm", "dynamic_img_size", "dynamic_img_pad", "drop_rate",
        "pos_drop_rate", "patch_drop_rate", "proj_drop_rate", "attn_drop_rate", "drop_path_rate", "weight_init",
        "fix_init", "embed_norm_layer", "norm_layer", "act_layer",
    ];
    let kw = Kwargs(preset.kwargs);
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
    // SiLU stays refused here as it was before the shared table: tests/bad_input.rs
    // pins `act_layer="swish"` as a refused value.
    let act = mapper::activation("act_layer", &kw.str("act_layer", "gelu")?)?;
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
        name: arch,
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
        preprocess: timm_preprocess(&preset.pretrained_cfg, in_chans, img_size),
        outputs: Default::default(),
    };
    if c.num_heads == 0 || !c.embed_dim.is_multiple_of(c.num_heads) {
        return Err(bad_option("num_heads", format!("embed_dim {} is not divisible by num_heads {}", c.embed_dim, c.num_heads)));
    }
    Ok(c)
}

fn shape_hint(name: &str, got: &[usize]) -> String {
    match name {
        "head.weight" | "head.bias" => {
            let n = got.first().unwrap_or(&0);
            format!("; if the checkpoint has {n} classes, pass --set num_classes={n}")
        }
        "pos_embed" => "; the checkpoint was trained at another img_size or grid: pass --set img_size=...".into(),
        _ => String::new(),
    }
}

/// Map a timm VisionTransformer state dict onto the canonical names of `c`.
pub fn convert(c: VitConfig, tensors: Vec<Tensor>) -> Result<Conversion> {
    let mut m = Mapper::new(tensors, Layout::Torch, shape_hint);
    let (d, h, p) = (c.embed_dim, c.mlp_hidden, c.patch_size);
    // Conv weight [D, C, P, P] flattens to rows of (c, ky, kx), matching patchify.
    m.linear_dims("patch_embed.proj", "patch_embed", &[c.in_chans, p, p], &[d], c.patch_bias)?;
    let mut prefix = Vec::new();
    if let Some(cls) = m.take_opt("cls_token", &[1, 1, d], c.class_token)? {
        prefix.extend(cls);
    }
    if let Some(reg) = m.take_opt("reg_token", &[1, c.reg_tokens, d], c.reg_tokens > 0)? {
        prefix.extend(reg);
    }
    if c.num_prefix() > 0 {
        m.put("prefix_tokens", vec![c.num_prefix(), d], prefix);
    }
    let (gh, gw) = c.grid();
    let embed_len = gh * gw + if c.no_embed_class { 0 } else { c.num_prefix() };
    if c.pos_embed {
        m.copy("pos_embed", "pos_embed", &[1, embed_len, d], vec![embed_len, d])?;
    }
    if c.pre_norm {
        m.norm("norm_pre", "norm_pre", d)?;
    }
    // LayerScale (init_values): present in the checkpoint or not; folded into the projection.
    for i in 0..c.depth {
        let b = format!("blocks.{i}");
        m.norm(&format!("{b}.norm1"), &format!("{b}.norm1"), d)?;
        m.linear(&format!("{b}.attn.qkv"), &format!("{b}.attn.qkv"), (d, 3 * d), c.qkv_bias)?;
        let ls1 = m.take_opt(&format!("{b}.ls1.gamma"), &[d], c.layer_scale)?;
        m.linear(&format!("{b}.attn.proj"), &format!("{b}.attn.proj"), (d, d), c.proj_bias)?;
        if let Some(g) = ls1 {
            m.fold_layer_scale(&format!("{b}.attn.proj"), &g)?;
        }
        m.norm(&format!("{b}.norm2"), &format!("{b}.norm2"), d)?;
        m.linear(&format!("{b}.mlp.fc1"), &format!("{b}.mlp.fc1"), (d, h), true)?;
        let ls2 = m.take_opt(&format!("{b}.ls2.gamma"), &[d], c.layer_scale)?;
        m.linear(&format!("{b}.mlp.fc2"), &format!("{b}.mlp.fc2"), (h, d), true)?;
        if let Some(g) = ls2 {
            m.fold_layer_scale(&format!("{b}.mlp.fc2"), &g)?;
        }
    }
    if c.norm {
        m.norm("norm", "norm", d)?;
    }
    if c.fc_norm {
        m.norm("fc_norm", "fc_norm", d)?;
    }
    if c.num_classes > 0 {
        m.linear("head", "head", (d, c.num_classes), true)?;
    }
    m.finish(ModelConfig::Vit(c), |name| {
        if name == "head.weight" {
            "; the checkpoint has a classifier head: drop --set num_classes=0".to_string()
        } else if name.contains(".ls1.") || name.contains(".ls2.") {
            "; the checkpoint uses LayerScale: pass --set init_values=1e-5".to_string()
        } else {
            "; check --model and --set against the checkpoint".to_string()
        }
    })
}
