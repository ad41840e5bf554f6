//! transformers' ViT-like image encoders onto the ViT graph, under the hub's tensor names
//! (q/k/v fused into one projection) and their config.json:
//! - ViT (`ViTForImageClassification`, `ViTModel`);
//! - DeiT (`DeiTForImageClassification`, `DeiTForImageClassificationWithTeacher`,
//!   `DeiTModel`): a distillation token after the class token;
//! - DINOv2 (`Dinov2Model`, `Dinov2ForImageClassification`, and the `Dinov2WithRegisters`
//!   pair): LayerScale (folded into the projections), register tokens after the class
//!   token, and a position embedding trained at `image_size` that transformers resamples
//!   (bicubic) to the run's patch grid; here it is resampled once, at conversion.
use crate::kwargs::Kwargs;
use crate::mapper::{self, Conversion, Layout, Mapper};
use crate::st::Tensor;
use crate::{Result, WeightsError};
use serde_json::Value;
use wgvision_graphs::vit::{GlobalPool, VitConfig, VitOutputs};
use wgvision_graphs::{ModelConfig, Preprocess};

/// The transformers ViT-like model types and what each class outputs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Vit,
    Deit,
    Dinov2,
    Dinov2Registers,
}

impl Kind {
    fn of(model_type: &str) -> Option<Kind> {
        Some(match model_type {
            "vit" => Kind::Vit,
            "deit" => Kind::Deit,
            "dinov2" => Kind::Dinov2,
            "dinov2_with_registers" => Kind::Dinov2Registers,
            _ => return None,
        })
    }

    /// transformers' class-name stem and the base model's tensor prefix.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Vit => ("ViT", "vit"),
            Kind::Deit => ("DeiT", "deit"),
            Kind::Dinov2 => ("Dinov2", "dinov2"),
            Kind::Dinov2Registers => ("Dinov2WithRegisters", "dinov2_with_registers"),
        }
    }

    fn dinov2(self) -> bool {
        matches!(self, Kind::Dinov2 | Kind::Dinov2Registers)
    }

    /// The supported classes and their heads.
    fn heads(self) -> Vec<(String, VitOutputs)> {
        let (stem, _) = self.names();
        let mut v = vec![(format!("{stem}ForImageClassification"), if self.dinov2() { VitOutputs::ClassAndPatchMean } else { VitOutputs::Logits })];
        v.push((format!("{stem}Model"), if self.dinov2() { VitOutputs::ClassToken } else { VitOutputs::Pooler }));
        if self == Kind::Deit {
            v.push(("DeiTForImageClassificationWithTeacher".into(), VitOutputs::TeacherAverage));
        }
        v
    }
}

/// Whether `model_type` is one of this module's.
pub fn handles(model_type: &str) -> bool {
    Kind::of(model_type).is_some()
}

/// The transformers class a checkpoint without `architectures` in its config.json holds,
/// from its tensor names (its head's tensors).
pub fn architecture_from_tensors(model_type: &str, names: &[&str]) -> Option<String> {
    let kind = Kind::of(model_type)?;
    let (stem, _) = kind.names();
    let has = |n: &str| names.contains(&n);
    Some(if has("cls_classifier.weight") {
        "DeiTForImageClassificationWithTeacher".into()
    } else if has("classifier.weight") {
        format!("{stem}ForImageClassification")
    } else {
        format!("{stem}Model")
    })
}

/// A transformers config.json of one of the classes above. The graph's input size is
/// `image_size`, except for DINOv2, whose processor crops 224 px (BitImageProcessor)
/// from a model trained at 518: `run_size` (the processor's crop) or 224.
pub fn config(json: &Value, run_size: Option<[usize; 2]>) -> Result<VitConfig> {
    let model_type = json["model_type"].as_str().unwrap_or("");
    let kind = Kind::of(model_type).ok_or_else(|| WeightsError::Unsupported(format!("model_type '{model_type}' is not a ViT-like transformers model")))?;
    let heads = kind.heads();
    let named: Vec<(&str, VitOutputs)> = heads.iter().map(|(n, o)| (n.as_str(), *o)).collect();
    let outputs = mapper::transformers_class(json, &named, 0)?;
    let kw = Kwargs(json.as_object().cloned().unwrap_or_default());
    let trained = kw.pair("image_size", if kind.dinov2() { 518 } else { 224 })?;
    let patch = kw.pair("patch_size", if kind.dinov2() { 14 } else { 16 })?;
    if patch[0] != patch[1] {
        return Err(WeightsError::Unsupported(format!("non-square patch_size {patch:?}")));
    }
    let img_size = match (kind.dinov2(), run_size) {
        (true, Some(s)) => s,
        (true, None) => [224, 224],
        (false, Some(s)) if s != trained => {
            return Err(WeightsError::Unsupported(format!(
                "image_size {s:?}: a transformers {} model runs at its config's image_size {trained:?} (only DINOv2 resamples its position embedding)",
                kind.names().0
            )))
        }
        (false, _) => trained,
    };
    let embed_dim = kw.usize("hidden_size", 768)?;
    let num_heads = kw.usize("num_attention_heads", 12)?;
    if num_heads == 0 || !embed_dim.is_multiple_of(num_heads) {
        return Err(crate::kwargs::bad_option("num_attention_heads", format!("hidden_size {embed_dim} is not divisible by {num_heads}")));
    }
    let mlp_hidden = if kind.dinov2() {
        if kw.bool("use_swiglu_ffn", false)? {
            return Err(WeightsError::Unsupported("DINOv2 with use_swiglu_ffn (the giant model's SwiGLU feed-forward) is not supported yet".into()));
        }
        (embed_dim as f64 * kw.f64("mlp_ratio", 4.0)?) as usize
    } else {
        kw.usize("intermediate_size", 3072)?
    };
    let classes = matches!(outputs, VitOutputs::Logits | VitOutputs::TeacherAverage | VitOutputs::ClassAndPatchMean);
    let num_classes = if classes { json["id2label"].as_object().map(|m| m.len()).or(json["num_labels"].as_u64().map(|x| x as usize)).unwrap_or(2) } else { 0 };
    let in_chans = kw.usize("num_channels", 3)?;
    let reg_tokens = match kind {
        Kind::Deit => 1,
        Kind::Dinov2Registers => match kw.usize("num_register_tokens", 4)? {
            0 => return Err(crate::kwargs::bad_option("num_register_tokens", "0: a model without registers is a Dinov2Model (model_type 'dinov2')".into())),
            n => n,
        },
        _ => 0,
    };
    let preprocess = if kind.dinov2() {
        // BitImageProcessor: resize the shortest edge to 256 (bicubic), crop 224, ImageNet
        // mean/std.
        Preprocess {
            input_size: [in_chans, img_size[0], img_size[1]],
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            crop_pct: 224.0 / 256.0,
            crop_mode: "center".into(),
            interpolation: "bicubic".into(),
        }
    } else if kind == Kind::Deit {
        // DeiTImageProcessor's defaults: both sides to 256 (bicubic), center crop 224
        // (a "squash" at crop_pct 224 / 256), mean = std = 0.5 (the hub's preprocessor
        // configs set ImageNet's).
        Preprocess {
            input_size: [in_chans, img_size[0], img_size[1]],
            mean: [0.5; 3],
            std: [0.5; 3],
            crop_pct: 224.0 / 256.0,
            crop_mode: "squash".into(),
            interpolation: "bicubic".into(),
        }
    } else {
        // ViTImageProcessor's defaults: resize to the input size (bilinear), no crop,
        // mean = std = 0.5.
        Preprocess {
            input_size: [in_chans, img_size[0], img_size[1]],
            mean: [0.5; 3],
            std: [0.5; 3],
            crop_pct: 1.0,
            crop_mode: "squash".into(),
            interpolation: "bilinear".into(),
        }
    };
    let class = heads.iter().find(|(_, o)| *o == outputs).map(|(n, _)| n.clone()).unwrap_or_default();
    Ok(VitConfig {
        name: json["_name_or_path"].as_str().filter(|s| !s.is_empty()).map(str::to_string).unwrap_or(class),
        img_size,
        patch_size: patch[0],
        in_chans,
        num_classes,
        global_pool: GlobalPool::Token,
        embed_dim,
        depth: kw.usize("num_hidden_layers", 12)?,
        num_heads,
        mlp_hidden,
        qkv_bias: kw.bool("qkv_bias", true)?,
        proj_bias: true,
        patch_bias: true,
        class_token: true,
        reg_tokens,
        // DINOv2's registers carry no position: the class token's is folded into it.
        no_embed_class: kind == Kind::Dinov2Registers,
        pos_embed: true,
        pre_norm: false,
        norm: true,
        fc_norm: false,
        norm_eps: kw.f64("layer_norm_eps", if kind.dinov2() { 1e-6 } else { 1e-12 })? as f32,
        act: mapper::activation("hidden_act", &kw.str("hidden_act", "gelu")?)?,
        layer_scale: kind.dinov2(),
        preprocess,
        outputs,
    })
}

fn shape_hint(name: &str, got: &[usize]) -> String {
    if name.ends_with("classifier.weight") || name.ends_with("classifier.bias") {
        format!("; the checkpoint has {} classes: check id2label / num_labels", got.first().unwrap_or(&0))
    } else if name.ends_with("embeddings.position_embeddings") {
        "; the checkpoint was trained at another image_size".into()
    } else {
        String::new()
    }
}

/// The kind a converted config came from: the distillation token marks DeiT, LayerScale
/// DINOv2 (with registers when it has more prefix tokens than the class token).
fn kind_of(c: &VitConfig) -> Kind {
    match (c.layer_scale, c.reg_tokens) {
        (true, 0) => Kind::Dinov2,
        (true, _) => Kind::Dinov2Registers,
        (false, 1) => Kind::Deit,
        _ => Kind::Vit,
    }
}

/// The position embedding [prefix + n*n, D] of a model trained on an n x n grid, as the run's
/// grid needs it: unchanged when the grids agree, else the patch part resampled as
/// transformers' DINOv2 interpolate_pos_encoding does.
fn position_embedding(m: &mut Mapper, from: &str, c: &VitConfig, kind: Kind) -> Result<Vec<f32>> {
    let d = c.embed_dim;
    let (gh, gw) = c.grid();
    // DeiT's distillation token has a position; DINOv2's registers do not.
    let want = gh * gw + if kind.dinov2() { 1 } else { c.num_prefix() };
    let got = m.shape_of(from).unwrap_or_default();
    let n = got.get(1).copied().unwrap_or(0).saturating_sub(1);
    let side = (n as f64).sqrt().round() as usize;
    // transformers resamples unless the grids are the same (not just the token counts).
    if !kind.dinov2() || got.len() != 3 || (side, side) == (gh, gw) || side * side != n || got[2] != d {
        return m.take(from, &[1, want, d]);
    }
    let pos = m.take(from, &[1, n + 1, d])?;
    let mut out = pos[..d].to_vec();
    out.extend(crate::interp::bicubic(&pos[d..], (side, side, d), (gh, gw), kind == Kind::Dinov2Registers));
    Ok(out)
}

/// Map one of the classes' state dicts onto the ViT graph's canonical names.
pub fn convert(c: VitConfig, tensors: Vec<Tensor>) -> Result<Conversion> {
    let mut m = Mapper::new(tensors, Layout::Torch, shape_hint);
    let kind = kind_of(&c);
    let (d, h, p) = (c.embed_dim, c.mlp_hidden, c.patch_size);
    // The base models' names have no prefix; the heads' models nest it.
    let base = matches!(c.outputs, VitOutputs::Pooler | VitOutputs::ClassToken);
    let root = if base { String::new() } else { format!("{}.", kind.names().1) };
    let e = format!("{root}embeddings");
    if kind.dinov2() {
        // Only for masked-image pre-training.
        let mask = format!("{e}.mask_token");
        m.discard(|k| k == mask);
    }
    m.linear_dims(&format!("{e}.patch_embeddings.projection"), "patch_embed", &[c.in_chans, p, p], &[d], true)?;
    let mut prefix = m.take(&format!("{e}.cls_token"), &[1, 1, d])?;
    let pos = position_embedding(&mut m, &format!("{e}.position_embeddings"), &c, kind)?;
    match kind {
        Kind::Deit => prefix.extend(m.take(&format!("{e}.distillation_token"), &[1, 1, d])?),
        Kind::Dinov2Registers => {
            // cls + pos[0], then the registers (no position); pos[1..] for the patches.
            prefix.iter_mut().zip(&pos[..d]).for_each(|(x, p)| *x += p);
            prefix.extend(m.take(&format!("{e}.register_tokens"), &[1, c.reg_tokens, d])?);
        }
        _ => {}
    }
    m.put("prefix_tokens", vec![c.num_prefix(), d], prefix);
    let pos = if c.no_embed_class { pos[d..].to_vec() } else { pos };
    m.put("pos_embed", vec![pos.len() / d, d], pos);
    for i in 0..c.depth {
        let (l, b) = (format!("{root}encoder.layer.{i}"), format!("blocks.{i}"));
        let (norm1, norm2, fc1, fc2) = if kind.dinov2() {
            ("norm1", "norm2", "mlp.fc1", "mlp.fc2")
        } else {
            ("layernorm_before", "layernorm_after", "intermediate.dense", "output.dense")
        };
        m.norm(&format!("{l}.{norm1}"), &format!("{b}.norm1"), d)?;
        let qkv = ["query", "key", "value"].map(|x| format!("{l}.attention.attention.{x}"));
        m.fuse_qkv(&qkv, &format!("{b}.attn.qkv"), &[d], &[d], c.qkv_bias)?;
        m.linear(&format!("{l}.attention.output.dense"), &format!("{b}.attn.proj"), (d, d), true)?;
        m.norm(&format!("{l}.{norm2}"), &format!("{b}.norm2"), d)?;
        m.linear(&format!("{l}.{fc1}"), &format!("{b}.mlp.fc1"), (d, h), true)?;
        m.linear(&format!("{l}.{fc2}"), &format!("{b}.mlp.fc2"), (h, d), true)?;
        if kind.dinov2() {
            for (s, to) in [("layer_scale1", "attn.proj"), ("layer_scale2", "mlp.fc2")] {
                let gamma = m.take(&format!("{l}.{s}.lambda1"), &[d])?;
                m.fold_layer_scale(&format!("{b}.{to}"), &gamma)?;
            }
        }
    }
    m.norm(&format!("{root}layernorm"), "norm", d)?;
    let n = c.num_classes;
    match c.outputs {
        VitOutputs::Logits => m.linear("classifier", "head", (d, n), true)?,
        VitOutputs::Pooler => m.linear("pooler.dense", "pooler", (d, d), true)?,
        VitOutputs::ClassToken => {}
        VitOutputs::TeacherAverage => {
            // (cls_classifier(x0) + distillation_classifier(x1)) / 2, the halves exact.
            for (from, to) in [("cls_classifier", "head"), ("distillation_classifier", "head_dist")] {
                m.linear(from, to, (d, n), true)?;
                m.scale(to, 0.5)?;
            }
        }
        VitOutputs::ClassAndPatchMean => {
            // classifier([cls, mean]) = W[:, :D] cls + W[:, D:] mean + b.
            let w = m.take("classifier.weight", &[n, 2 * d])?;
            let t = mapper::linear_t(&w, n, 2 * d); // [2D, n]
            m.put("head.weight", vec![d, n], t[..d * n].to_vec());
            m.put("head_patch.weight", vec![d, n], t[d * n..].to_vec());
            let b = m.take("classifier.bias", &[n])?;
            m.put("head.bias", vec![n], b);
        }
    }
    let class = kind.heads().into_iter().find(|(_, o)| *o == c.outputs).map(|(n, _)| n).unwrap_or_default();
    m.finish(ModelConfig::Vit(c), move |_| format!("; check config.json against the checkpoint (num_hidden_layers, {class})"))
}
