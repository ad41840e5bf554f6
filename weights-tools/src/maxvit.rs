//! timm MaxViT checkpoints (`MaxxVit` with 'M' blocks: `maxvit_*_tf_*`, `maxvit_*_rw_*`,
//! `maxvit_rmlp_*_rw_*`) -> wgvision model files. Every BatchNorm is folded into the conv
//! before or after it (in float64), conv kernels are laid out for im2col / depthwise /
//! matmul, qkv rows are reordered to [q, k, v], LayerScale is folded into the
//! projections, and each attention's relative-position bias (table, TF table or MLP) is
//! evaluated once into the dense [heads, N, N] bias the window-attention kernel adds.
use crate::kwargs::{bad_option, pair_of, timm_preprocess, Kwargs};
use crate::mapper::{self, activation, linear_t, Conversion, Layout, Mapper};
use crate::st::Tensor;
use crate::swin::gather_rel_bias;
use crate::{Result, WeightsError};
use serde_json::{Map, Value};
use wgvision_graphs::maxvit::{BlockShape, MaxVitCheckpoint, MaxVitConfig, Padding, RelPos};
use wgvision_graphs::ModelConfig;

static TIMM_PRESETS: &str = include_str!("../data/timm_maxvit_presets.json");

/// timm MaxViT model names this build can convert.
pub fn model_names() -> Vec<String> {
    mapper::preset_names(TIMM_PRESETS, "MaxViT")
}

/// timm's overlay of MaxViT overrides: `transformer_*` and `conv_*` keys go to the
/// sub-configs (only fields they have), cfg fields to the model cfg, the rest to the
/// constructor.
fn route(kwargs: &Map<String, Value>, key: &str) -> Result<Vec<String>> {
    let cfg = kwargs.get("cfg").and_then(Value::as_object);
    let field = |sub: &str, f: &str| -> Result<Vec<String>> {
        match cfg.and_then(|c| c.get(sub)).and_then(Value::as_object) {
            Some(m) if m.contains_key(f) => Ok(vec!["cfg".into(), sub.into(), f.into()]),
            _ => Err(bad_option(key, "not a field of timm's MaxxVitTransformerCfg / MaxxVitConvCfg".into())),
        }
    };
    if key == "cfg" {
        // The model cfg is the preset's, not a constructor option.
        return Err(bad_option(key, "not an option of timm's MaxxVit (or not supported by wgvision)".into()));
    }
    if let Some(f) = key.strip_prefix("transformer_") {
        field("transformer_cfg", f)
    } else if let Some(f) = key.strip_prefix("conv_") {
        field("conv_cfg", f)
    } else if cfg.is_some_and(|c| c.contains_key(key)) {
        Ok(vec!["cfg".into(), key.into()])
    } else {
        Ok(vec![key.into()])
    }
}

/// Reject a config value wgvision does not build, naming the timm option.
fn require(kw: &Kwargs, key: &str, default: &str, allowed: &[&str], prefix: &str) -> Result<String> {
    let v = kw.str(key, default)?;
    if !allowed.contains(&v.as_str()) {
        return Err(WeightsError::Unsupported(format!("{prefix}{key}='{v}' (wgvision supports {})", allowed.join(", "))));
    }
    Ok(v)
}

/// `timm.create_model(name, **overrides)`'s MaxViT config, overrides placed by `route`.
pub fn timm_config(name: &str, overrides: &[(String, Value)]) -> Result<MaxVitConfig> {
    let preset = mapper::timm_preset(TIMM_PRESETS, "MaxViT", name, overrides, route)?;
    let mut kwargs = preset.kwargs;
    let mut cfg: Map<String, Value> = kwargs.remove("cfg").and_then(|v| v.as_object().cloned()).unwrap_or_default();
    let conv: Map<String, Value> = cfg.remove("conv_cfg").and_then(|v| v.as_object().cloned()).unwrap_or_default();
    let mut tr: Map<String, Value> = cfg.remove("transformer_cfg").and_then(|v| v.as_object().cloned()).unwrap_or_default();
    // MaxxVitTransformerCfg.__post_init__: a window_size without grid_size sets both.
    if overrides.iter().any(|(k, _)| k == "transformer_window_size") && !overrides.iter().any(|(k, _)| k == "transformer_grid_size") {
        let w = tr.get("window_size").cloned().unwrap_or(Value::Null);
        tr.insert("grid_size".into(), w);
    }
    let kw = Kwargs(kwargs);
    kw.check_known(&["img_size", "in_chans", "num_classes", "global_pool", "drop_rate", "drop_path_rate"], "MaxxVit")?;
    if kw.str("global_pool", "avg")? != "avg" {
        return Err(WeightsError::Unsupported("global_pool other than 'avg'".into()));
    }
    let (cfg, conv, tr) = (Kwargs(cfg), Kwargs(conv), Kwargs(tr));
    // What wgvision builds: MBConv with depthwise 3x3, SE, dw striding, avg2 pools,
    // BatchNorm convs; channels-last LayerNorm attention with both partitions.
    require(&conv, "block_type", "mbconv", &["mbconv"], "conv_")?;
    require(&conv, "stride_mode", "dw", &["dw"], "conv_")?;
    require(&conv, "pool_type", "avg2", &["avg2"], "conv_")?;
    require(&conv, "attn_layer", "se", &["se"], "conv_")?;
    require(&conv, "norm_layer", "batchnorm2d", &["batchnorm2d"], "conv_")?;
    require(&tr, "pool_type", "avg2", &["avg2"], "transformer_")?;
    require(&tr, "norm_layer_cl", "layernorm", &["layernorm"], "transformer_")?;
    require(&tr, "norm_layer", "layernorm2d", &["layernorm2d"], "transformer_")?;
    for (kw, key, default, what) in [
        (&conv, "pre_norm_act", false, "conv_pre_norm_act=true"),
        (&conv, "attn_early", false, "conv_attn_early=true"),
        (&tr, "no_block_attn", false, "transformer_no_block_attn=true"),
        (&tr, "use_nchw_attn", false, "transformer_use_nchw_attn=true"),
    ] {
        if kw.bool(key, default)? != default {
            return Err(WeightsError::Unsupported(what.into()));
        }
    }
    if conv.usize("kernel_size", 3)? != 3 || conv.usize("group_size", 1)? != 1 {
        return Err(WeightsError::Unsupported("MBConv other than depthwise 3x3 (conv_kernel_size / conv_group_size)".into()));
    }
    let padding = match conv.str("padding", "")?.as_str() {
        "" => Padding::Symmetric,
        "same" => Padding::TfSame,
        other => return Err(bad_option("conv_padding", format!("expected '' or 'same', got '{other}'"))),
    };
    let rel_pos = match tr.str("rel_pos_type", "bias")?.as_str() {
        "bias" => RelPos::Bias,
        "bias_tf" => RelPos::BiasTf,
        "mlp" => RelPos::Mlp,
        other => return Err(WeightsError::Unsupported(format!("transformer_rel_pos_type='{other}'"))),
    };
    let img_size = kw.pair("img_size", 224)?;
    let in_chans = kw.usize("in_chans", 3)?;
    let ratio = tr.usize("partition_ratio", 32)?.max(1);
    let pair = |kw: &Kwargs, k: &str| -> Result<Option<[usize; 2]>> {
        kw.raw(k).map(|v| pair_of(v).ok_or_else(|| bad_option(k, format!("expected an integer or [h, w], got {v}")))).transpose()
    };
    let window = pair(&tr, "window_size")?.unwrap_or([img_size[0] / ratio, img_size[1] / ratio]);
    let grid = pair(&tr, "grid_size")?.unwrap_or(window);
    let stem_width = match cfg.raw("stem_width") {
        None => [64, 64],
        Some(v) => pair_of(v).ok_or_else(|| bad_option("stem_width", format!("expected an integer or [c1, c2], got {v}")))?,
    };
    let c = MaxVitConfig {
        name: preset.arch,
        img_size,
        in_chans,
        num_classes: kw.usize("num_classes", 1000)?,
        embed_dim: cfg.usizes("embed_dim", &[96, 192, 384, 768])?,
        depths: cfg.usizes("depths", &[2, 3, 5, 2])?,
        stem_width,
        stem_bias: cfg.bool("stem_bias", false)?,
        padding,
        conv_act: activation("conv_act_layer", &conv.str("act_layer", "gelu")?)?,
        expand_ratio: conv.ratio("expand_ratio", 4.0)? as f32,
        expand_output: conv.bool("expand_output", true)?,
        se_ratio: conv.ratio("attn_ratio", 0.25)? as f32,
        se_act: activation("conv_attn_act_layer", &conv.str("attn_act_layer", "silu")?)?,
        conv_output_bias: conv.bool("output_bias", true)?,
        dim_head: tr.usize("dim_head", 32)?,
        window,
        grid,
        attn_bias: tr.bool("attn_bias", true)?,
        mlp_ratio: tr.ratio("expand_ratio", 4.0)? as f32,
        attn_act: activation("transformer_act_layer", &tr.str("act_layer", "gelu")?)?,
        norm_eps: tr.f64("norm_eps", 1e-6)? as f32,
        head_hidden_size: cfg.opt_usize("head_hidden_size")?.filter(|&h| h > 0),
        preprocess: timm_preprocess(&preset.pretrained_cfg, in_chans, img_size),
        checkpoint: MaxVitCheckpoint {
            head_first: tr.bool("head_first", true)?,
            rel_pos,
            bn_eps: conv.f64("norm_eps", 1e-5)? as f32,
            layer_scale: tr.is_set("init_values"),
            rel_pos_dim: tr.usize("rel_pos_dim", 512)?,
        },
    };
    c.blocks()?;
    Ok(c)
}

fn shape_hint(name: &str, got: &[usize]) -> String {
    if name.contains("rel_pos") {
        "; the checkpoint was trained at another img_size / window: pass the matching --set img_size=... (or transformer_window_size=...)".into()
    } else if name.starts_with("head.fc") {
        let n = got.first().unwrap_or(&0);
        format!("; if the checkpoint has {n} classes, pass --set num_classes={n}")
    } else {
        String::new()
    }
}

/// RelPosBiasTf: [heads, 2h-1, 2w-1] table, bias[q, k] = T[ky - qy + h - 1, kx - qx + w - 1].
fn gather_rel_bias_tf(table: &[f32], heads: usize, [wh, ww]: [usize; 2]) -> Vec<f32> {
    let n = wh * ww;
    let (vh, vw) = (2 * wh - 1, 2 * ww - 1);
    let mut out = vec![0.0; heads * n * n];
    for h in 0..heads {
        for q in 0..n {
            for k in 0..n {
                let dy = (k / ww + wh - 1) - q / ww;
                let dx = (k % ww + ww - 1) - q % ww;
                out[(h * n + q) * n + k] = table[(h * vh + dy) * vw + dx];
            }
        }
    }
    out
}

/// RelPosMlp ('cr' mode): the MLP over sign(d) * ln(1 + |d|) coordinates of every relative
/// offset, as a Swin-style [(2h-1)(2w-1), heads] table (float64, rounded once).
fn rel_pos_mlp_table(fc1_w: &[f32], fc1_b: &[f32], fc2_w: &[f32], fc2_b: &[f32], hidden: usize, heads: usize, [wh, ww]: [usize; 2]) -> Vec<f32> {
    let logc = |d: isize| (d as f64).signum() * (1.0 + (d as f64).abs()).ln();
    let mut table = Vec::with_capacity((2 * wh - 1) * (2 * ww - 1) * heads);
    let mut hid = vec![0.0f64; hidden];
    for dy in -(wh as isize - 1)..wh as isize {
        for dx in -(ww as isize - 1)..ww as isize {
            let (cy, cx) = (logc(dy), logc(dx));
            for (j, hv) in hid.iter_mut().enumerate() {
                *hv = (fc1_w[2 * j] as f64 * cy + fc1_w[2 * j + 1] as f64 * cx + fc1_b[j] as f64).max(0.0);
            }
            for h in 0..heads {
                let v: f64 = fc2_b[h] as f64 + hid.iter().enumerate().map(|(j, hv)| fc2_w[h * hidden + j] as f64 * hv).sum::<f64>();
                table.push(v as f32);
            }
        }
    }
    table
}

/// Map a timm MaxxVit state dict onto the canonical names of `c`.
pub fn convert(c: MaxVitConfig, tensors: Vec<Tensor>) -> Result<Conversion> {
    let stages = c.blocks()?;
    let mut m = Mapper::new(tensors, Layout::Torch, shape_hint);
    // Derived buffers, not parameters.
    m.discard(|k| {
        k.ends_with("num_batches_tracked") || k.ends_with("relative_position_index") || k.ends_with("rel_coords_log") || k.ends_with("_lookup")
    });
    let eps = c.checkpoint.bn_eps;
    // Stem: conv1 (+ BN + act), conv2.
    let [s0, s1] = c.stem_width;
    let cin = c.in_chans;
    let w = m.take("stem.conv1.weight", &[s0, cin, 3, 3])?;
    let b = m.take_opt("stem.conv1.bias", &[s0], c.stem_bias)?;
    let bn = m.batch_norm("stem.norm1", s0, eps)?;
    m.put_conv("stem.conv1", &w, b.as_deref(), (s0, cin, 3), None, Some(&bn));
    let w = m.take("stem.conv2.weight", &[s1, s0, 3, 3])?;
    let b = m.take_opt("stem.conv2.bias", &[s1], c.stem_bias)?;
    m.put_conv("stem.conv2", &w, b.as_deref(), (s1, s0, 3), None, None);
    for (i, blocks) in stages.iter().enumerate() {
        for (j, blk) in blocks.iter().enumerate() {
            let p = format!("stages.{i}.blocks.{j}");
            convert_mbconv(&c, &mut m, &format!("{p}.conv"), blk)?;
            for (part, size) in [("attn_block", c.window), ("attn_grid", c.grid)] {
                convert_attention(&c, &mut m, &format!("{p}.{part}"), blk, size)?;
            }
        }
    }
    let d = c.num_features();
    let k_in = match c.head_hidden_size {
        Some(hidden) => {
            m.norm("head.norm", "head.norm", d)?;
            m.linear("head.pre_logits.fc", "head.pre_logits", (d, hidden), true)?;
            hidden
        }
        None => {
            m.norm("norm", "norm", d)?;
            d
        }
    };
    if c.num_classes > 0 {
        m.linear("head.fc", "head", (k_in, c.num_classes), true)?;
    }
    m.finish(ModelConfig::MaxVit(c), |name| {
        if name.starts_with("head.fc") {
            "; the checkpoint has a classifier head: set --set num_classes=N".into()
        } else if name.contains(".ls1.") || name.contains(".ls2.") {
            "; the checkpoint uses LayerScale: pass --set transformer_init_values=1e-6".into()
        } else {
            "; check the model name and options against the checkpoint".into()
        }
    })
}

fn convert_mbconv(c: &MaxVitConfig, m: &mut Mapper, p: &str, b: &BlockShape) -> Result<()> {
    let eps = c.checkpoint.bn_eps;
    let (cin, mid, cout, se) = (b.in_chs, b.mid, b.out_chs, b.se);
    if b.stride == 2 && cin != cout {
        m.linear_dims(&format!("{p}.shortcut.expand"), &format!("{p}.shortcut.expand"), &[cin, 1, 1], &[cout], c.conv_output_bias)?;
    }
    let pre = m.batch_norm(&format!("{p}.pre_norm"), cin, eps)?;
    let w = m.take(&format!("{p}.conv1_1x1.weight"), &[mid, cin, 1, 1])?;
    let bn1 = m.batch_norm(&format!("{p}.norm1"), mid, eps)?;
    m.put_conv(&format!("{p}.conv1"), &w, None, (mid, cin, 1), Some(&pre), Some(&bn1));
    // Depthwise [mid, 1, 3, 3] -> [9, mid] with norm2 folded.
    let w = m.take(&format!("{p}.conv2_kxk.weight"), &[mid, 1, 3, 3])?;
    let bn2 = m.batch_norm(&format!("{p}.norm2"), mid, eps)?;
    let mut dw = vec![0.0f32; 9 * mid];
    for ch in 0..mid {
        for tap in 0..9 {
            dw[tap * mid + ch] = (w[ch * 9 + tap] as f64 * bn2.scale[ch]) as f32;
        }
    }
    m.put(format!("{p}.dw.weight"), vec![9, mid], dw);
    m.put(format!("{p}.dw.bias"), vec![mid], bn2.shift.iter().map(|&v| v as f32).collect());
    m.linear_dims(&format!("{p}.se.fc1"), &format!("{p}.se.fc1"), &[mid, 1, 1], &[se], true)?;
    m.linear_dims(&format!("{p}.se.fc2"), &format!("{p}.se.fc2"), &[se, 1, 1], &[mid], true)?;
    m.linear_dims(&format!("{p}.conv3_1x1"), &format!("{p}.conv3"), &[mid, 1, 1], &[cout], c.conv_output_bias)?;
    Ok(())
}

fn convert_attention(c: &MaxVitConfig, m: &mut Mapper, p: &str, b: &BlockShape, size: [usize; 2]) -> Result<()> {
    let ck = &c.checkpoint;
    let (d, heads, dh) = (b.out_chs, b.heads, c.dim_head);
    m.norm(&format!("{p}.norm1"), &format!("{p}.norm1"), d)?;
    m.norm(&format!("{p}.norm2"), &format!("{p}.norm2"), d)?;
    // qkv rows: head_first stores [q_h, k_h, v_h] per head; the kernel reads [q, k, v].
    let row = |r: usize| -> usize {
        if ck.head_first {
            let (h, rest) = (r / (3 * dh), r % (3 * dh));
            (rest / dh) * d + h * dh + rest % dh
        } else {
            r
        }
    };
    let w = m.take(&format!("{p}.attn.qkv.weight"), &[3 * d, d])?;
    let mut wq = vec![0.0f32; 3 * d * d];
    for r in 0..3 * d {
        wq[row(r) * d..(row(r) + 1) * d].copy_from_slice(&w[r * d..(r + 1) * d]);
    }
    m.put(format!("{p}.attn.qkv.weight"), vec![d, 3 * d], linear_t(&wq, 3 * d, d));
    if let Some(bias) = m.take_opt(&format!("{p}.attn.qkv.bias"), &[3 * d], c.attn_bias)? {
        let mut bq = vec![0.0f32; 3 * d];
        for (r, v) in bias.iter().enumerate() {
            bq[row(r)] = *v;
        }
        m.put(format!("{p}.attn.qkv.bias"), vec![3 * d], bq);
    }
    let [wh, ww] = size;
    let n = wh * ww;
    let rp = format!("{p}.attn.rel_pos");
    let rel = match ck.rel_pos {
        RelPos::Bias => {
            let t = m.take(&format!("{rp}.relative_position_bias_table"), &[(2 * wh - 1) * (2 * ww - 1), heads])?;
            gather_rel_bias(&t, heads, size)
        }
        RelPos::BiasTf => {
            let t = m.take(&format!("{rp}.relative_position_bias_table"), &[heads, 2 * wh - 1, 2 * ww - 1])?;
            gather_rel_bias_tf(&t, heads, size)
        }
        RelPos::Mlp => {
            let hidden = ck.rel_pos_dim;
            let f1w = m.take(&format!("{rp}.mlp.fc1.weight"), &[hidden, 2])?;
            let f1b = m.take(&format!("{rp}.mlp.fc1.bias"), &[hidden])?;
            let f2w = m.take(&format!("{rp}.mlp.fc2.weight"), &[heads, hidden])?;
            let f2b = m.take(&format!("{rp}.mlp.fc2.bias"), &[heads])?;
            gather_rel_bias(&rel_pos_mlp_table(&f1w, &f1b, &f2w, &f2b, hidden, heads, size), heads, size)
        }
    };
    m.put(format!("{p}.attn.rel_bias"), vec![heads, n, n], rel);
    // LayerScale gammas fold into the projection that feeds each residual.
    let ls1 = m.take_opt(&format!("{p}.ls1.gamma"), &[d], ck.layer_scale)?;
    let ls2 = m.take_opt(&format!("{p}.ls2.gamma"), &[d], ck.layer_scale)?;
    m.linear(&format!("{p}.attn.proj"), &format!("{p}.attn.proj"), (d, d), c.attn_bias)?;
    let hidden = (d as f32 * c.mlp_ratio) as usize;
    m.linear(&format!("{p}.mlp.fc1"), &format!("{p}.mlp.fc1"), (d, hidden), true)?;
    m.linear(&format!("{p}.mlp.fc2"), &format!("{p}.mlp.fc2"), (hidden, d), true)?;
    for (g, to) in [(ls1, "attn.proj"), (ls2, "mlp.fc2")] {
        if let Some(g) = g {
            m.fold_layer_scale(&format!("{p}.{to}"), &g)?;
        }
    }
    Ok(())
}
