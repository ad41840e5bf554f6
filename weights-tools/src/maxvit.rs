//! timm MaxViT checkpoints (`MaxxVit` with 'M' blocks: `maxvit_*_tf_*`, `maxvit_*_rw_*`,
//! `maxvit_rmlp_*_rw_*`) -> wgvision model files. Every BatchNorm is folded into the conv
//! before or after it (in float64), conv kernels are laid out for im2col / depthwise /
//! matmul, qkv rows are reordered to [q, k, v], LayerScale is folded into the
//! projections, and each attention's relative-position bias (table, TF table or MLP) is
//! evaluated once into the dense [heads, N, N] bias the window-attention kernel adds.
use crate::kwargs::{bad_option, pair_of, parse_presets, preset_names, timm_preprocess, Kwargs};
use crate::source::{linear_t, Converted, Source};
use crate::st::Tensor;
use crate::swin::gather_rel_bias;
use crate::{Result, WeightsError};
use serde_json::{Map, Value};
use wgvision_engine::Activation;
use wgvision_graphs::maxvit::{BlockShape, MaxVitCheckpoint, MaxVitConfig, Padding, RelPos};
use wgvision_graphs::ModelConfig;

static TIMM_PRESETS: &str = include_str!("../data/timm_maxvit_presets.json");

fn presets() -> Result<Value> {
    parse_presets(TIMM_PRESETS, "timm MaxViT")
}

/// timm MaxViT model names this build can convert.
pub fn model_names() -> Vec<String> {
    preset_names(presets())
}

fn act(key: &str, name: &str) -> Result<Activation> {
    Ok(match name {
        "gelu" => Activation::Gelu,
        "gelu_tanh" => Activation::GeluTanh,
        "silu" | "swish" => Activation::Silu,
        "relu" => Activation::Relu,
        "tanh" => Activation::Tanh,
        "quick_gelu" => Activation::QuickGelu,
        other => return Err(bad_option(key, format!("activation '{other}' is not supported"))),
    })
}

/// Reject a config value wgvision does not build, naming the timm option.
fn require(kw: &Kwargs, key: &str, default: &str, allowed: &[&str], prefix: &str) -> Result<String> {
    let v = kw.str(key, default)?;
    if !allowed.contains(&v.as_str()) {
        return Err(WeightsError::Unsupported(format!("{prefix}{key}='{v}' (wgvision supports {})", allowed.join(", "))));
    }
    Ok(v)
}

/// `timm.create_model(name, **overrides)`'s MaxViT config. Overrides follow timm's
/// overlay: `transformer_*` and `conv_*` keys go to the sub-configs, cfg fields (embed_dim,
/// depths, stem_width, head_hidden_size, ...) to the model cfg, the rest to the constructor.
pub fn timm_config(name: &str, overrides: &[(String, Value)]) -> Result<MaxVitConfig> {
    let all = presets()?;
    let arch = name.split('.').next().unwrap_or(name);
    let Some(preset) = all["presets"].get(arch) else {
        return Err(WeightsError::UnknownModel { name: name.to_string(), hint: format!(" (timm MaxViT names: {})", model_names().join(", ")) });
    };
    let mut kwargs: Map<String, Value> = preset["kwargs"].as_object().cloned().unwrap_or_default();
    let mut cfg: Map<String, Value> = kwargs.remove("cfg").and_then(|v| v.as_object().cloned()).unwrap_or_default();
    let mut conv: Map<String, Value> = cfg.remove("conv_cfg").and_then(|v| v.as_object().cloned()).unwrap_or_default();
    let mut tr: Map<String, Value> = cfg.remove("transformer_cfg").and_then(|v| v.as_object().cloned()).unwrap_or_default();
    for (k, v) in overrides {
        // 0: constructor kwargs, 1: MaxxVitCfg, 2: conv_cfg, 3: transformer_cfg.
        let (which, key) = if let Some(f) = k.strip_prefix("transformer_") {
            (3, f)
        } else if let Some(f) = k.strip_prefix("conv_") {
            (2, f)
        } else if cfg.contains_key(k) {
            (1, k.as_str())
        } else {
            (0, k.as_str())
        };
        let maps = [&mut kwargs, &mut cfg, &mut conv, &mut tr];
        if which > 0 && !maps[which].contains_key(key) {
            return Err(bad_option(k, "not a field of timm's MaxxVitTransformerCfg / MaxxVitConvCfg".into()));
        }
        maps[which].insert(key.to_string(), v.clone());
    }
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
        name: arch.to_string(),
        img_size,
        in_chans,
        num_classes: kw.usize("num_classes", 1000)?,
        embed_dim: cfg.usizes("embed_dim", &[96, 192, 384, 768])?,
        depths: cfg.usizes("depths", &[2, 3, 5, 2])?,
        stem_width,
        stem_bias: cfg.bool("stem_bias", false)?,
        padding,
        conv_act: act("conv_act_layer", &conv.str("act_layer", "gelu")?)?,
        expand_ratio: conv.ratio("expand_ratio", 4.0)? as f32,
        expand_output: conv.bool("expand_output", true)?,
        se_ratio: conv.ratio("attn_ratio", 0.25)? as f32,
        se_act: act("conv_attn_act_layer", &conv.str("attn_act_layer", "silu")?)?,
        conv_output_bias: conv.bool("output_bias", true)?,
        dim_head: tr.usize("dim_head", 32)?,
        window,
        grid,
        attn_bias: tr.bool("attn_bias", true)?,
        mlp_ratio: tr.ratio("expand_ratio", 4.0)? as f32,
        attn_act: act("transformer_act_layer", &tr.str("act_layer", "gelu")?)?,
        norm_eps: tr.f64("norm_eps", 1e-6)? as f32,
        head_hidden_size: cfg.opt_usize("head_hidden_size")?.filter(|&h| h > 0),
        preprocess: timm_preprocess(&preset["pretrained_cfg"], in_chans, img_size),
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
        format!("; if the checkpoint has {} classes, pass --set num_classes={}", got[0], got[0])
    } else {
        String::new()
    }
}

/// Folded BatchNorm: y = x * scale + shift.
struct Bn {
    scale: Vec<f64>,
    shift: Vec<f64>,
}

fn take_bn(src: &mut Source, name: &str, c: usize, eps: f32) -> Result<Bn> {
    let g = src.take(&format!("{name}.weight"), &[c])?;
    let b = src.take(&format!("{name}.bias"), &[c])?;
    let m = src.take(&format!("{name}.running_mean"), &[c])?;
    let v = src.take(&format!("{name}.running_var"), &[c])?;
    let scale: Vec<f64> = (0..c).map(|i| g[i] as f64 / (v[i] as f64 + eps as f64).sqrt()).collect();
    let shift = (0..c).map(|i| b[i] as f64 - m[i] as f64 * scale[i]).collect();
    Ok(Bn { scale, shift })
}

/// torch conv weight [O, I, k, k] (k = 1 or 3) with optional input affine (a BatchNorm
/// before it), bias and output BatchNorm -> engine matmul weight [(ky, kx, i), O] and bias.
fn fold_conv(w: &[f32], bias: Option<&[f32]>, (o, i, k): (usize, usize, usize), pre: Option<&Bn>, post: Option<&Bn>) -> (Vec<f32>, Vec<f32>) {
    let kk = k * k;
    let mut wt = vec![0.0f32; kk * i * o];
    let mut bt = vec![0.0f32; o];
    for oc in 0..o {
        let (s, t) = post.map_or((1.0, 0.0), |bn| (bn.scale[oc], bn.shift[oc]));
        let mut acc = bias.map_or(0.0, |b| b[oc] as f64);
        for ic in 0..i {
            let (ps, pt) = pre.map_or((1.0, 0.0), |bn| (bn.scale[ic], bn.shift[ic]));
            for tap in 0..kk {
                let v = w[(oc * i + ic) * kk + tap] as f64;
                acc += v * pt;
                wt[(tap * i + ic) * o + oc] = (v * ps * s) as f32;
            }
        }
        bt[oc] = (acc * s + t) as f32;
    }
    (wt, bt)
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

fn put(out: &mut Converted, name: String, shape: Vec<usize>, data: Vec<f32>) {
    out.insert(name, (shape, data));
}

/// Map a timm MaxxVit state dict onto the canonical names of `c`.
pub fn convert(c: &MaxVitConfig, tensors: Vec<Tensor>) -> Result<(ModelConfig, Converted)> {
    let stages = c.blocks()?;
    let mut src = Source::new(tensors, shape_hint);
    // Derived buffers, not parameters.
    src.discard(|k| {
        k.ends_with("num_batches_tracked") || k.ends_with("relative_position_index") || k.ends_with("rel_coords_log") || k.ends_with("_lookup")
    });
    let ck = &c.checkpoint;
    let eps = ck.bn_eps;
    let mut out = Converted::new();
    // Stem: conv1 (+ BN + act), conv2.
    let [s0, s1] = c.stem_width;
    let cin = c.in_chans;
    let w = src.take("stem.conv1.weight", &[s0, cin, 3, 3])?;
    let b = src.take_opt("stem.conv1.bias", &[s0], c.stem_bias)?;
    let bn = take_bn(&mut src, "stem.norm1", s0, eps)?;
    let (wt, bt) = fold_conv(&w, b.as_deref(), (s0, cin, 3), None, Some(&bn));
    put(&mut out, "stem.conv1.weight".into(), vec![9 * cin, s0], wt);
    put(&mut out, "stem.conv1.bias".into(), vec![s0], bt);
    let w = src.take("stem.conv2.weight", &[s1, s0, 3, 3])?;
    let b = src.take_opt("stem.conv2.bias", &[s1], c.stem_bias)?;
    let (wt, bt) = fold_conv(&w, b.as_deref(), (s1, s0, 3), None, None);
    put(&mut out, "stem.conv2.weight".into(), vec![9 * s0, s1], wt);
    if c.stem_bias {
        put(&mut out, "stem.conv2.bias".into(), vec![s1], bt);
    }
    for (i, blocks) in stages.iter().enumerate() {
        for (j, blk) in blocks.iter().enumerate() {
            let p = format!("stages.{i}.blocks.{j}");
            convert_mbconv(c, &mut src, &mut out, &format!("{p}.conv"), blk)?;
            for (part, size) in [("attn_block", c.window), ("attn_grid", c.grid)] {
                convert_attention(c, &mut src, &mut out, &format!("{p}.{part}"), blk, size)?;
            }
        }
    }
    let d = c.num_features();
    let mut norm = |src: &mut Source, from: &str, to: &str| -> Result<()> {
        put(&mut out, format!("{to}.weight"), vec![d], src.take(&format!("{from}.weight"), &[d])?);
        put(&mut out, format!("{to}.bias"), vec![d], src.take(&format!("{from}.bias"), &[d])?);
        Ok(())
    };
    let k_in = match c.head_hidden_size {
        Some(hidden) => {
            norm(&mut src, "head.norm", "head.norm")?;
            let w = src.take("head.pre_logits.fc.weight", &[hidden, d])?;
            put(&mut out, "head.pre_logits.weight".into(), vec![d, hidden], linear_t(&w, hidden, d, None));
            put(&mut out, "head.pre_logits.bias".into(), vec![hidden], src.take("head.pre_logits.fc.bias", &[hidden])?);
            hidden
        }
        None => {
            norm(&mut src, "norm", "norm")?;
            d
        }
    };
    if c.num_classes > 0 {
        let k = c.num_classes;
        let w = src.take("head.fc.weight", &[k, k_in])?;
        put(&mut out, "head.weight".into(), vec![k_in, k], linear_t(&w, k, k_in, None));
        put(&mut out, "head.bias".into(), vec![k], src.take("head.fc.bias", &[k])?);
    }
    src.finish(|name| {
        if name.starts_with("head.fc") {
            "; the checkpoint has a classifier head: set --set num_classes=N".into()
        } else if name.contains(".ls1.") || name.contains(".ls2.") {
            "; the checkpoint uses LayerScale: pass --set transformer_init_values=1e-6".into()
        } else {
            "; check the model name and options against the checkpoint".into()
        }
    })?;
    Ok((ModelConfig::MaxVit(c.clone()), out))
}

fn convert_mbconv(c: &MaxVitConfig, src: &mut Source, out: &mut Converted, p: &str, b: &BlockShape) -> Result<()> {
    let eps = c.checkpoint.bn_eps;
    let (cin, mid, cout, se) = (b.in_chs, b.mid, b.out_chs, b.se);
    if b.stride == 2 && cin != cout {
        let w = src.take(&format!("{p}.shortcut.expand.weight"), &[cout, cin, 1, 1])?;
        put(out, format!("{p}.shortcut.expand.weight"), vec![cin, cout], linear_t(&w, cout, cin, None));
        if let Some(bias) = src.take_opt(&format!("{p}.shortcut.expand.bias"), &[cout], c.conv_output_bias)? {
            put(out, format!("{p}.shortcut.expand.bias"), vec![cout], bias);
        }
    }
    let pre = take_bn(src, &format!("{p}.pre_norm"), cin, eps)?;
    let w = src.take(&format!("{p}.conv1_1x1.weight"), &[mid, cin, 1, 1])?;
    let bn1 = take_bn(src, &format!("{p}.norm1"), mid, eps)?;
    let (wt, bt) = fold_conv(&w, None, (mid, cin, 1), Some(&pre), Some(&bn1));
    put(out, format!("{p}.conv1.weight"), vec![cin, mid], wt);
    put(out, format!("{p}.conv1.bias"), vec![mid], bt);
    // Depthwise [mid, 1, 3, 3] -> [9, mid] with norm2 folded.
    let w = src.take(&format!("{p}.conv2_kxk.weight"), &[mid, 1, 3, 3])?;
    let bn2 = take_bn(src, &format!("{p}.norm2"), mid, eps)?;
    let mut dw = vec![0.0f32; 9 * mid];
    for ch in 0..mid {
        for tap in 0..9 {
            dw[tap * mid + ch] = (w[ch * 9 + tap] as f64 * bn2.scale[ch]) as f32;
        }
    }
    put(out, format!("{p}.dw.weight"), vec![9, mid], dw);
    put(out, format!("{p}.dw.bias"), vec![mid], bn2.shift.iter().map(|&v| v as f32).collect());
    for (from, to, (o, i)) in [("se.fc1", "se.fc1", (se, mid)), ("se.fc2", "se.fc2", (mid, se))] {
        let w = src.take(&format!("{p}.{from}.weight"), &[o, i, 1, 1])?;
        put(out, format!("{p}.{to}.weight"), vec![i, o], linear_t(&w, o, i, None));
        put(out, format!("{p}.{to}.bias"), vec![o], src.take(&format!("{p}.{from}.bias"), &[o])?);
    }
    let w = src.take(&format!("{p}.conv3_1x1.weight"), &[cout, mid, 1, 1])?;
    put(out, format!("{p}.conv3.weight"), vec![mid, cout], linear_t(&w, cout, mid, None));
    if let Some(bias) = src.take_opt(&format!("{p}.conv3_1x1.bias"), &[cout], c.conv_output_bias)? {
        put(out, format!("{p}.conv3.bias"), vec![cout], bias);
    }
    Ok(())
}

fn convert_attention(c: &MaxVitConfig, src: &mut Source, out: &mut Converted, p: &str, b: &BlockShape, size: [usize; 2]) -> Result<()> {
    let ck = &c.checkpoint;
    let (d, heads, dh) = (b.out_chs, b.heads, c.dim_head);
    for norm in ["norm1", "norm2"] {
        put(out, format!("{p}.{norm}.weight"), vec![d], src.take(&format!("{p}.{norm}.weight"), &[d])?);
        put(out, format!("{p}.{norm}.bias"), vec![d], src.take(&format!("{p}.{norm}.bias"), &[d])?);
    }
    // qkv rows: head_first stores [q_h, k_h, v_h] per head; the kernel reads [q, k, v].
    let row = |r: usize| -> usize {
        if ck.head_first {
            let (h, rest) = (r / (3 * dh), r % (3 * dh));
            (rest / dh) * d + h * dh + rest % dh
        } else {
            r
        }
    };
    let w = src.take(&format!("{p}.attn.qkv.weight"), &[3 * d, d])?;
    let mut wq = vec![0.0f32; 3 * d * d];
    for r in 0..3 * d {
        wq[row(r) * d..(row(r) + 1) * d].copy_from_slice(&w[r * d..(r + 1) * d]);
    }
    put(out, format!("{p}.attn.qkv.weight"), vec![d, 3 * d], linear_t(&wq, 3 * d, d, None));
    if let Some(bias) = src.take_opt(&format!("{p}.attn.qkv.bias"), &[3 * d], c.attn_bias)? {
        let mut bq = vec![0.0f32; 3 * d];
        for (r, v) in bias.iter().enumerate() {
            bq[row(r)] = *v;
        }
        put(out, format!("{p}.attn.qkv.bias"), vec![3 * d], bq);
    }
    let [wh, ww] = size;
    let n = wh * ww;
    let rp = format!("{p}.attn.rel_pos");
    let rel = match ck.rel_pos {
        RelPos::Bias => {
            let t = src.take(&format!("{rp}.relative_position_bias_table"), &[(2 * wh - 1) * (2 * ww - 1), heads])?;
            gather_rel_bias(&t, heads, size)
        }
        RelPos::BiasTf => {
            let t = src.take(&format!("{rp}.relative_position_bias_table"), &[heads, 2 * wh - 1, 2 * ww - 1])?;
            gather_rel_bias_tf(&t, heads, size)
        }
        RelPos::Mlp => {
            let hidden = ck.rel_pos_dim;
            let f1w = src.take(&format!("{rp}.mlp.fc1.weight"), &[hidden, 2])?;
            let f1b = src.take(&format!("{rp}.mlp.fc1.bias"), &[hidden])?;
            let f2w = src.take(&format!("{rp}.mlp.fc2.weight"), &[heads, hidden])?;
            let f2b = src.take(&format!("{rp}.mlp.fc2.bias"), &[heads])?;
            gather_rel_bias(&rel_pos_mlp_table(&f1w, &f1b, &f2w, &f2b, hidden, heads, size), heads, size)
        }
    };
    put(out, format!("{p}.attn.rel_bias"), vec![heads, n, n], rel);
    // LayerScale gammas fold into the projection that feeds each residual.
    let ls1 = src.take_opt(&format!("{p}.ls1.gamma"), &[d], ck.layer_scale)?;
    let ls2 = src.take_opt(&format!("{p}.ls2.gamma"), &[d], ck.layer_scale)?;
    let scaled = |b: Vec<f32>, g: &Option<Vec<f32>>| -> Vec<f32> {
        match g {
            Some(g) => b.iter().zip(g).map(|(x, s)| x * s).collect(),
            None => b,
        }
    };
    let w = src.take(&format!("{p}.attn.proj.weight"), &[d, d])?;
    put(out, format!("{p}.attn.proj.weight"), vec![d, d], linear_t(&w, d, d, ls1.as_deref()));
    if let Some(bias) = src.take_opt(&format!("{p}.attn.proj.bias"), &[d], c.attn_bias)? {
        put(out, format!("{p}.attn.proj.bias"), vec![d], scaled(bias, &ls1));
    }
    let m = (d as f32 * c.mlp_ratio) as usize;
    let w = src.take(&format!("{p}.mlp.fc1.weight"), &[m, d])?;
    put(out, format!("{p}.mlp.fc1.weight"), vec![d, m], linear_t(&w, m, d, None));
    put(out, format!("{p}.mlp.fc1.bias"), vec![m], src.take(&format!("{p}.mlp.fc1.bias"), &[m])?);
    let w = src.take(&format!("{p}.mlp.fc2.weight"), &[d, m])?;
    put(out, format!("{p}.mlp.fc2.weight"), vec![m, d], linear_t(&w, d, m, ls2.as_deref()));
    let bias = src.take(&format!("{p}.mlp.fc2.bias"), &[d])?;
    put(out, format!("{p}.mlp.fc2.bias"), vec![d], scaled(bias, &ls2));
    Ok(())
}
