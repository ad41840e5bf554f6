//! google-research/vmoe checkpoints (the Flax parameter tree flattened to safetensors with
//! '/'-joined paths) and their config.json -> wgvision model files. Flax Dense kernels are
//! already [in, out]; the patch-embedding kernel is HWIO and is reordered to the patchify
//! rows (channel, y, x); q/k/v [D, H, Dh] kernels are fused into one [D, 3D] matrix.
use crate::kwargs::{bad_option, pair_of, Kwargs};
use crate::mapper::{Conversion, Layout, Mapper};
use crate::st::Tensor;
use crate::{Result, WeightsError};
use serde_json::Value;
use wgvision_graphs::vmoe::{Classifier, MoeConfig, RoutingKind, VmoeConfig};
use wgvision_graphs::{ModelConfig, Preprocess};

fn object(v: &Value, key: &str) -> Result<Kwargs> {
    match v.get(key) {
        Some(Value::Object(m)) => Ok(Kwargs(m.clone())),
        None | Some(Value::Null) => Ok(Kwargs(Default::default())),
        Some(other) => Err(bad_option(key, format!("expected an object, got {other}"))),
    }
}

fn required(kw: &Kwargs, key: &str) -> Result<usize> {
    if !kw.is_set(key) {
        return Err(bad_option(key, "missing from config.json".into()));
    }
    kw.usize(key, 0)
}

/// A vmoe config.json (vmoe's own names; unknown keys are ignored, as vmoe ignores them).
pub fn config(json: &Value) -> Result<VmoeConfig> {
    let top = Kwargs(json.as_object().cloned().ok_or_else(|| bad_option("config.json", "expected a JSON object".into()))?);
    let img_size = match top.raw("image_size") {
        Some(v) => pair_of(v).ok_or_else(|| bad_option("image_size", format!("expected [H, W], got {v}")))?,
        None => return Err(bad_option("image_size", "missing from config.json".into())),
    };
    let patch = match top.raw("patch_size") {
        Some(v) => pair_of(v).ok_or_else(|| bad_option("patch_size", format!("expected [P, P], got {v}")))?,
        None => return Err(bad_option("patch_size", "missing from config.json".into())),
    };
    if patch[0] != patch[1] {
        return Err(WeightsError::Unsupported(format!("non-square patch_size {patch:?}")));
    }
    let classifier = match top.str("classifier", "token")?.as_str() {
        "token" => Classifier::Token,
        "gap" => Classifier::Gap,
        other => return Err(bad_option("classifier", format!("expected 'token' or 'gap', got '{other}'"))),
    };
    let enc = object(json, "encoder")?;
    let moe_json = json.get("encoder").and_then(|e| e.get("moe")).filter(|m| !m.is_null());
    let moe = match moe_json {
        None => None,
        Some(m) => {
            let mk = Kwargs(m.as_object().cloned().unwrap_or_default());
            let router = object(m, "router")?;
            let dispatcher = object(m.get("router").unwrap_or(&Value::Null), "dispatcher")?;
            let routing = match mk.str("routing", "token")?.as_str() {
                "token" => RoutingKind::Token,
                "image" => RoutingKind::Image,
                other => return Err(bad_option("encoder.moe.routing", format!("expected 'token' or 'image', got '{other}'"))),
            };
            Some(MoeConfig {
                layers: mk.usizes("layers", &[])?,
                num_experts: required(&mk, "num_experts")?,
                group_size: if routing == RoutingKind::Token { required(&mk, "group_size")? } else { mk.usize("group_size", 0)? },
                routing,
                num_selected_experts: router.usize("num_selected_experts", 1)?,
                capacity_factor: dispatcher.f64("capacity_factor", 1.0)?,
                batch_priority: dispatcher.bool("batch_priority", false)?,
                shared_expert: mk.bool("shared_expert", false)?,
            })
        }
    };
    let c = VmoeConfig {
        name: top.str("name", "vmoe")?,
        img_size,
        patch_size: patch[0],
        hidden_size: required(&top, "hidden_size")?,
        num_heads: required(&enc, "num_heads")?,
        num_layers: required(&enc, "num_layers")?,
        mlp_dim: required(&enc, "mlp_dim")?,
        num_classes: top.usize("num_classes", 0)?,
        classifier,
        representation_size: top.opt_usize("representation_size")?,
        moe,
        // vmoe's input pipeline: resize to image_size, values in [-1, 1]. The optional
        // `preprocess` object (wgvision's own key; the released-checkpoint presets set it)
        // describes an eval pipeline that crops: resize_small(S / crop_pct)|central_crop(S).
        preprocess: {
            let pre = object(json, "preprocess")?;
            let crop_mode = pre.str("crop_mode", "squash")?;
            if crop_mode != "squash" && crop_mode != "center" {
                return Err(bad_option("preprocess.crop_mode", format!("expected 'squash' or 'center', got '{crop_mode}'")));
            }
            let crop_pct = pre.f64("crop_pct", 1.0)?;
            if !(crop_pct > 0.0 && crop_pct <= 1.0) {
                return Err(bad_option("preprocess.crop_pct", format!("{crop_pct} is not in (0, 1]")));
            }
            Preprocess {
                input_size: [3, img_size[0], img_size[1]],
                mean: [0.5; 3],
                std: [0.5; 3],
                crop_pct: crop_pct as f32,
                crop_mode,
                interpolation: "bilinear".into(),
            }
        },
    };
    c.check()?;
    Ok(c)
}

fn shape_hint(name: &str, got: &[usize]) -> String {
    if name.contains("posembed") {
        "; the checkpoint was trained at another image_size or patch_size: set them in config.json".into()
    } else if name.starts_with("head/") {
        format!("; the checkpoint has {} classes: set num_classes in config.json", got.last().unwrap_or(&0))
    } else {
        String::new()
    }
}

/// Map a vmoe parameter tree onto the canonical names of `c`.
pub fn convert(c: VmoeConfig, tensors: Vec<Tensor>) -> Result<Conversion> {
    let mut m = Mapper::new(tensors, Layout::Flax, shape_hint);
    let (d, p, h) = (c.hidden_size, c.patch_size, c.mlp_dim);
    let (heads, dh) = (c.num_heads, c.hidden_size / c.num_heads);
    // HWIO [P, P, 3, D] -> rows (c, y, x) of the patchify output.
    let k = m.take("embedding/kernel", &[p, p, 3, d])?;
    let mut w = vec![0.0f32; 3 * p * p * d];
    for ch in 0..3 {
        for y in 0..p {
            for x in 0..p {
                let (row, from) = ((ch * p + y) * p + x, (y * p + x) * 3 + ch);
                w[row * d..(row + 1) * d].copy_from_slice(&k[from * d..(from + 1) * d]);
            }
        }
    }
    m.put("embedding.weight", vec![3 * p * p, d], w);
    m.copy("embedding/bias", "embedding.bias", &[d], vec![d])?;
    if c.classifier == Classifier::Token {
        m.copy("cls", "cls", &[1, 1, d], vec![1, d])?;
    }
    let n = c.tokens();
    m.copy("Encoder/posembed_input/pos_embedding", "pos_embed", &[1, n, d], vec![n, d])?;
    for i in 0..c.num_layers {
        let f = format!("Encoder/encoderblock_{i}");
        let b = format!("blocks.{i}");
        m.norm(&format!("{f}/LayerNorm_0"), &format!("{b}.norm1"), d)?;
        m.norm(&format!("{f}/LayerNorm_1"), &format!("{b}.norm2"), d)?;
        let qkv = ["query", "key", "value"].map(|q| format!("{f}/SelfAttention/{q}"));
        m.fuse_qkv(&qkv, &format!("{b}.attn.qkv"), &[d], &[heads, dh], true)?;
        m.linear_dims(&format!("{f}/SelfAttention/out"), &format!("{b}.attn.out"), &[heads, dh], &[d], true)?;
        match c.moe.as_ref().filter(|_| c.is_moe(i)) {
            Some(moe) => {
                let e = moe.num_experts;
                if moe.shared_expert {
                    m.linear(&format!("{f}/Moe/Shared/Dense_0"), &format!("{b}.shared.fc1"), (d, h), true)?;
                    m.linear(&format!("{f}/Moe/Shared/Dense_1"), &format!("{b}.shared.fc2"), (h, d), true)?;
                }
                m.linear(&format!("{f}/Moe/Router/dense"), &format!("{b}.moe.router"), (d, e), false)?;
                // Expert kernels stay stacked [E, in, out]: the MoE kernels index them per expert.
                for (dense, fc, (i_, o_)) in [("Dense_0", "fc1", (d, h)), ("Dense_1", "fc2", (h, d))] {
                    let (from, to) = (format!("{f}/Moe/Mlp/{dense}"), format!("{b}.moe.{fc}"));
                    m.copy(&format!("{from}/kernel"), &format!("{to}.weight"), &[e, i_, o_], vec![e, i_, o_])?;
                    m.copy(&format!("{from}/bias"), &format!("{to}.bias"), &[e, o_], vec![e, o_])?;
                }
            }
            None => {
                m.linear(&format!("{f}/Mlp/Dense_0"), &format!("{b}.mlp.fc1"), (d, h), true)?;
                m.linear(&format!("{f}/Mlp/Dense_1"), &format!("{b}.mlp.fc2"), (h, d), true)?;
            }
        }
    }
    m.norm("Encoder/encoder_norm", "norm", d)?;
    let mut width = d;
    if let Some(r) = c.representation_size {
        m.linear("pre_logits", "pre_logits", (d, r), true)?;
        width = r;
    }
    if c.num_classes > 0 {
        m.linear("head", "head", (width, c.num_classes), true)?;
    }
    m.finish(ModelConfig::Vmoe(c), |name| {
        if name.contains("/Moe/") {
            "; the config's encoder.moe (layers, shared_expert) does not match the checkpoint".into()
        } else if name.starts_with("pre_logits") {
            "; the checkpoint has pre_logits: set representation_size in config.json".into()
        } else {
            "; check config.json against the checkpoint".into()
        }
    })
}

/// Built-in benchmark presets (synthetic weights), as vmoe config.json values.
pub fn preset(name: &str) -> Option<Value> {
    match name {
        // ViT-S/16-sized V-MoE: E=8, K=2, MoE in every other block, one group per image,
        // batch priority, capacity factor 1.05 (vmoe's usual inference setting).
        "vmoe_s16_e8_k2" => Some(serde_json::json!({
            "name": "vmoe_s16_e8_k2", "image_size": [224, 224], "patch_size": [16, 16], "hidden_size": 384,
            "num_classes": 1000, "classifier": "token", "representation_size": null,
            "encoder": {"num_layers": 12, "num_heads": 6, "mlp_dim": 1536,
                "moe": {"layers": [1, 3, 5, 7, 9, 11], "num_experts": 8, "group_size": 197,
                    "router": {"num_selected_experts": 2, "noise_std": 1.0,
                        "dispatcher": {"capacity_factor": 1.05, "batch_priority": true}}}}
        })),
        _ => None,
    }
}

/// vmoe's released checkpoints: their configs as vmoe's config files build them
/// (weights-tools/python/dump_vmoe_presets.py reads them into this file).
static CHECKPOINT_PRESETS: &str = include_str!("../data/vmoe_presets.json");

fn checkpoint_presets() -> Result<serde_json::Map<String, Value>> {
    let v: Value = serde_json::from_str(CHECKPOINT_PRESETS).map_err(|e| WeightsError::Unsupported(format!("built-in vmoe presets: {e}")))?;
    v.get("presets").and_then(Value::as_object).cloned().ok_or_else(|| WeightsError::Unsupported("built-in vmoe presets: no 'presets' map".into()))
}

/// The names `convert --from vmoe --model NAME` accepts, sorted.
pub fn checkpoint_preset_names() -> Vec<String> {
    checkpoint_presets().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// `a` with `b` merged over it, recursively (ml_collections' ConfigDict.update).
fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(old) if old.is_object() && v.is_object() => merge(old, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

/// The config.json of a released checkpoint (`--model NAME`): vmoe's model config with
/// the evaluation overrides its config file sets (vmoe's evaluator builds the evaluated
/// network that way, e.g. with a higher capacity factor), the image size and crop of its
/// evaluation pipeline, and the name.
pub fn checkpoint_preset(name: &str) -> Result<Value> {
    let presets = checkpoint_presets()?;
    let Some(p) = presets.get(name) else {
        let names: Vec<&str> = presets.keys().map(String::as_str).collect();
        return Err(bad_option("--model", format!("unknown vmoe checkpoint '{name}'; the released checkpoints are: {}", names.join(", "))));
    };
    let mut json = p["model"].clone();
    if let Some(o) = p.get("evaluate_model_overrides").filter(|o| !o.is_null()) {
        merge(&mut json, o);
    }
    let size = p["image_size"].clone();
    let obj = json.as_object_mut().ok_or_else(|| WeightsError::Unsupported(format!("built-in vmoe preset {name}: model is not an object")))?;
    obj.insert("name".into(), Value::String(name.into()));
    obj.insert("image_size".into(), serde_json::json!([size, size]));
    obj.insert("preprocess".into(), serde_json::json!({"crop_pct": p["eval_crop_pct"], "crop_mode": p["eval_crop_mode"]}));
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every released checkpoint's config builds, with the fields vmoe's configs give it.
    #[test]
    fn checkpoint_presets_build_with_vmoe_fields() {
        let names = checkpoint_preset_names();
        assert_eq!(names.len(), 5, "{names:?}");
        // name: (image, patch, hidden, layers, heads, mlp, moe layers, group, cf, representation, classes, crop_pct)
        type Row = (usize, usize, usize, usize, usize, usize, &'static [usize], usize, f64, Option<usize>, usize, f64);
        let want: &[(&str, Row)] = &[
            ("vmoe_s32_last2_ilsvrc2012_randaug_light1", (224, 32, 512, 8, 8, 2048, &[5, 7], 400, 4.0, Some(512), 1000, 0.875)),
            ("vmoe_s32_last2_ilsvrc2012_randaug_light1_ft_ilsvrc2012", (384, 32, 512, 8, 8, 2048, &[5, 7], 1160, 1.5, None, 1000, 1.0)),
            ("vmoe_s32_last2_ilsvrc2012_randaug_medium", (224, 32, 512, 8, 8, 2048, &[5, 7], 400, 4.0, Some(512), 1000, 0.875)),
            ("vmoe_b16_imagenet21k_randaug_strong", (224, 16, 768, 12, 12, 3072, &[1, 3, 5, 7, 9, 11], 1576, 1.05, None, 21843, 0.875)),
            ("vmoe_b16_imagenet21k_randaug_strong_ft_ilsvrc2012", (384, 16, 768, 12, 12, 3072, &[1, 3, 5, 7, 9, 11], 4616, 1.5, None, 1000, 1.0)),
        ];
        for (name, (img, p, d, l, h, m, layers, group, cf, rep, classes, crop)) in want {
            let c = config(&checkpoint_preset(name).unwrap()).unwrap();
            let moe = c.moe.clone().unwrap();
            assert_eq!((c.name.as_str(), c.img_size, c.patch_size, c.hidden_size, c.num_layers, c.num_heads, c.mlp_dim), (*name, [*img; 2], *p, *d, *l, *h, *m));
            assert_eq!((moe.layers.as_slice(), moe.num_experts, moe.group_size, moe.num_selected_experts, moe.capacity_factor), (*layers, 8, *group, 2, *cf), "{name}");
            assert_eq!((moe.routing, moe.batch_priority, moe.shared_expert), (RoutingKind::Token, false, false), "{name}");
            assert_eq!((c.representation_size, c.num_classes, c.classifier), (*rep, *classes, Classifier::Token), "{name}");
            assert_eq!(c.preprocess.crop_pct as f64, *crop, "{name}");
            // vmoe routes groups of 8 images' tokens: the smallest batch is 8.
            assert_eq!(c.min_batch(), 8, "{name}");
            crate::check_geometry(&ModelConfig::Vmoe(c)).unwrap();
        }
        assert!(matches!(checkpoint_preset("vmoe_l16"), Err(WeightsError::BadOption { .. })));
    }
}
