//! The one mapper every converter goes through, so that the families agree on how a peer
//! tensor is taken, laid out, fused and folded, on activation names, and on timm presets.
use crate::st::Tensor;
use crate::{Result, WeightsError};
use serde_json::{Map, Value};
use std::collections::HashMap;
use wgvision_engine::Activation;
use wgvision_graphs::ModelConfig;

/// Canonical name -> (shape, f32 data), ready for `format::write_model`.
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// A converted checkpoint with the config it was converted for: the two are written
/// together, so they travel together.
pub struct Conversion {
    pub config: ModelConfig,
    pub tensors: Tensors,
}

impl Conversion {
    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|(s, _)| s.iter().product::<usize>()).sum()
    }
}

/// How a peer names and lays out its parameters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layout {
    /// PyTorch (timm, transformers): `a.b.weight` [out, in...], LayerNorm `weight` / `bias`.
    Torch,
    /// Flax (vmoe): `a/b/kernel` [in..., out...], LayerNorm `scale` / `bias`.
    Flax,
}

/// A peer checkpoint being mapped: each peer tensor is taken at most once, so one left
/// over at the end is a tensor the configured model does not have.
pub struct Mapper {
    tensors: HashMap<String, Tensor>,
    layout: Layout,
    /// Extra advice for a shape mismatch on a given tensor (e.g. which --set fixes it).
    shape_hint: fn(&str, &[usize]) -> String,
    out: Tensors,
    /// How many peer tensors there were (progress).
    initial: usize,
}

impl Mapper {
    pub fn new(tensors: Vec<Tensor>, layout: Layout, shape_hint: fn(&str, &[usize]) -> String) -> Mapper {
        let initial = tensors.len();
        Mapper { tensors: tensors.into_iter().map(|t| (t.name.clone(), t)).collect(), layout, shape_hint, out: Tensors::new(), initial }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// A peer tensor's shape, if the checkpoint has it.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.shape.clone())
    }

    /// Multiply the weight and bias already put under `to` by `k` (e.g. an averaged
    /// head's 1/2).
    pub fn scale(&mut self, to: &str, k: f32) -> Result<()> {
        for part in ["weight", "bias"] {
            if let Some((_, v)) = self.out.get_mut(&format!("{to}.{part}")) {
                v.iter_mut().for_each(|x| *x *= k);
            }
        }
        Ok(())
    }

    /// Drop peer tensors that are derived buffers, not parameters (e.g. index tables).
    pub fn discard(&mut self, pred: impl Fn(&str) -> bool) {
        self.tensors.retain(|k, _| !pred(k));
    }

    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        crate::progress::report("converting", (self.initial - self.tensors.len()) as u64, self.initial as u64);
        let t = self.tensors.remove(name).ok_or_else(|| WeightsError::MissingTensor {
            tensor: name.to_string(),
            hint: format!(" (expected shape {shape:?}); check the model options against the checkpoint"),
        })?;
        if t.shape != shape {
            let hint = (self.shape_hint)(name, &t.shape);
            return Err(WeightsError::ShapeMismatch { tensor: name.to_string(), expected: shape.to_vec(), got: t.shape, hint });
        }
        Ok(t.data)
    }

    /// `take` where the config says the tensor exists; otherwise nothing is taken, and a
    /// tensor the checkpoint has anyway is reported by `finish`.
    pub fn take_opt(&mut self, name: &str, shape: &[usize], present: bool) -> Result<Option<Vec<f32>>> {
        if present {
            self.take(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn put(&mut self, name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) {
        self.out.insert(name.into(), (shape, data));
    }

    /// A tensor whose data is already in the engine's layout, reshaped to `to_shape`.
    pub fn copy(&mut self, from: &str, to: &str, from_shape: &[usize], to_shape: Vec<usize>) -> Result<()> {
        let data = self.take(from, from_shape)?;
        self.put(to, to_shape, data);
        Ok(())
    }

    /// The peer's name of a parameter of module `module`.
    fn param(&self, module: &str, torch: &str, flax: &str) -> String {
        match self.layout {
            Layout::Torch => format!("{module}.{torch}"),
            Layout::Flax => format!("{module}/{flax}"),
        }
    }

    /// A peer weight of a projection from `k` to `n` as the engine's [K, N] matrix: torch
    /// stores [n..., k...] (convs too), Flax [k..., n...].
    fn take_matrix(&mut self, name: &str, k: &[usize], n: &[usize]) -> Result<Vec<f32>> {
        let (kk, nn) = (k.iter().product(), n.iter().product());
        Ok(match self.layout {
            Layout::Torch => linear_t(&self.take(name, &[n, k].concat())?, nn, kk),
            Layout::Flax => self.take(name, &[k, n].concat())?,
        })
    }

    /// A Linear (or a conv used as one) `from` -> `{to}.weight` [K, N], and `{to}.bias`
    /// [N] when the config says it has one.
    pub fn linear(&mut self, from: &str, to: &str, (k, n): (usize, usize), bias: bool) -> Result<()> {
        self.linear_dims(from, to, &[k], &[n], bias)
    }

    /// `linear` for peer weights with several input or output dims (a conv's [C, P, P], a
    /// Flax DenseGeneral's [heads, head_dim]).
    pub fn linear_dims(&mut self, from: &str, to: &str, k: &[usize], n: &[usize], bias: bool) -> Result<()> {
        let name = self.param(from, "weight", "kernel");
        let w = self.take_matrix(&name, k, n)?;
        let (kk, nn) = (k.iter().product(), n.iter().product());
        self.put(format!("{to}.weight"), vec![kk, nn], w);
        if bias {
            let b = self.take(&self.param(from, "bias", "bias"), n)?;
            self.put(format!("{to}.bias"), vec![nn], b);
        }
        Ok(())
    }

    /// A LayerNorm's affine parameters, `d` wide.
    pub fn norm(&mut self, from: &str, to: &str, d: usize) -> Result<()> {
        let w = self.take(&self.param(from, "weight", "scale"), &[d])?;
        self.put(format!("{to}.weight"), vec![d], w);
        let b = self.take(&self.param(from, "bias", "bias"), &[d])?;
        self.put(format!("{to}.bias"), vec![d], b);
        Ok(())
    }

    /// Separate q, k, v projections (`from`, in that order) -> one `{to}` projection whose
    /// output columns are [q, k, v], as the attention kernel reads them.
    pub fn fuse_qkv(&mut self, from: &[String; 3], to: &str, k: &[usize], n: &[usize], bias: bool) -> Result<()> {
        let (kk, nn) = (k.iter().product::<usize>(), n.iter().product::<usize>());
        let mut w = vec![0.0f32; kk * 3 * nn];
        let mut b = Vec::with_capacity(3 * nn);
        for (s, proj) in from.iter().enumerate() {
            let name = self.param(proj, "weight", "kernel");
            let m = self.take_matrix(&name, k, n)?;
            for r in 0..kk {
                w[r * 3 * nn + s * nn..r * 3 * nn + (s + 1) * nn].copy_from_slice(&m[r * nn..(r + 1) * nn]);
            }
            if bias {
                b.extend(self.take(&self.param(proj, "bias", "bias"), n)?);
            }
        }
        self.put(format!("{to}.weight"), vec![kk, 3 * nn], w);
        if bias {
            self.put(format!("{to}.bias"), vec![3 * nn], b);
        }
        Ok(())
    }

    /// Fold a LayerScale `gamma` (one factor per output) into the projection already put
    /// under `to`, which feeds the same residual: x + g * (W x + b) = x + (g W) x + g b.
    pub fn fold_layer_scale(&mut self, to: &str, gamma: &[f32]) -> Result<()> {
        let weight = format!("{to}.weight");
        let missing = |tensor: String| WeightsError::MissingTensor { tensor, hint: " (the projection a LayerScale folds into)".into() };
        let (shape, w) = self.out.get_mut(&weight).ok_or_else(|| missing(weight.clone()))?;
        if shape.last() != Some(&gamma.len()) {
            return Err(WeightsError::ShapeMismatch { tensor: weight, expected: vec![gamma.len()], got: shape.clone(), hint: " (LayerScale)".into() });
        }
        for (j, x) in w.iter_mut().enumerate() {
            *x *= gamma[j % gamma.len()];
        }
        if let Some((_, b)) = self.out.get_mut(&format!("{to}.bias")) {
            b.iter_mut().zip(gamma).for_each(|(x, g)| *x *= g);
        }
        Ok(())
    }

    /// A BatchNorm's running statistics and affine parameters as one per-channel affine.
    pub fn batch_norm(&mut self, name: &str, c: usize, eps: f32) -> Result<Bn> {
        let g = self.take(&format!("{name}.weight"), &[c])?;
        let b = self.take(&format!("{name}.bias"), &[c])?;
        let m = self.take(&format!("{name}.running_mean"), &[c])?;
        let v = self.take(&format!("{name}.running_var"), &[c])?;
        let scale: Vec<f64> = (0..c).map(|i| g[i] as f64 / (v[i] as f64 + eps as f64).sqrt()).collect();
        let shift = (0..c).map(|i| b[i] as f64 - m[i] as f64 * scale[i]).collect();
        Ok(Bn { scale, shift })
    }

    /// A torch conv `w` [O, I, k, k] with its bias and the BatchNorms before (`pre`) and
    /// after it (`post`) folded in -> `{to}.weight` [(ky, kx, i), O] for im2col / matmul,
    /// and `{to}.bias` [O] wherever the conv or a BatchNorm gives it one.
    pub fn put_conv(&mut self, to: &str, w: &[f32], bias: Option<&[f32]>, (o, i, k): (usize, usize, usize), pre: Option<&Bn>, post: Option<&Bn>) {
        let (wt, bt) = fold_conv(w, bias, (o, i, k), pre, post);
        self.put(format!("{to}.weight"), vec![k * k * i, o], wt);
        if bias.is_some() || pre.is_some() || post.is_some() {
            self.put(format!("{to}.bias"), vec![o], bt);
        }
    }

    /// Every peer tensor must have been consumed (or discarded); `hint` advises on the
    /// first one left over.
    pub fn finish(self, config: ModelConfig, hint: impl Fn(&str) -> String) -> Result<Conversion> {
        // The smallest name, so the error does not depend on hash order.
        if let Some((name, t)) = self.tensors.into_iter().min_by(|a, b| a.0.cmp(&b.0)) {
            return Err(WeightsError::UnexpectedTensor { hint: hint(&name), tensor: name, shape: t.shape });
        }
        Ok(Conversion { config, tensors: self.out })
    }
}

/// torch Linear weight [out, in] -> engine layout [in, out].
pub fn linear_t(w: &[f32], out: usize, inp: usize) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for o in 0..out {
        for i in 0..inp {
            t[i * out + o] = w[o * inp + i];
        }
    }
    t
}

/// A folded BatchNorm: y = x * scale + shift, kept in float64 until folded.
pub struct Bn {
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
}

/// See `Mapper::put_conv`; folded in float64 and rounded once.
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

/// Activation names of timm (`act_layer`) and transformers (`hidden_act`) in one table,
/// so that every family accepts the same name for the same function.
const ACTIVATIONS: &[(&str, Activation)] = &[
    ("gelu", Activation::Gelu),
    ("gelu_tanh", Activation::GeluTanh),
    ("gelu_new", Activation::GeluTanh),
    ("gelu_pytorch_tanh", Activation::GeluTanh),
    ("quick_gelu", Activation::QuickGelu),
    ("relu", Activation::Relu),
    ("silu", Activation::Silu),
    ("swish", Activation::Silu),
    ("tanh", Activation::Tanh),
];

/// The engine activation for the value `name` of option `key`.
/// Every family takes the same table.
pub fn activation(key: &str, name: &str) -> Result<Activation> {
    if let Some(&(_, a)) = ACTIVATIONS.iter().find(|(n, _)| *n == name) {
        return Ok(a);
    }
    let names: Vec<&str> = ACTIVATIONS.iter().map(|(n, _)| *n).collect();
    Err(WeightsError::Unsupported(format!("{key} '{name}' (wgvision supports {})", names.join(", "))))
}

/// A timm model's constructor kwargs as timm's model function passes them (recorded in
/// a presets file), with `--set` overrides on top, and its pretrained cfg.
pub struct TimmPreset {
    /// The name without a pretrained tag ("vit_base_patch16_224.augreg_in21k" names
    /// weights, not architecture).
    pub arch: String,
    pub kwargs: Map<String, Value>,
    pub pretrained_cfg: Value,
}

/// The transformers class a config.json's `architectures` names among `classes` (class
/// name, what the converter makes of it); with no `architectures`, `classes[default]`.
/// Naming only other classes is an error that lists the supported ones.
pub fn transformers_class<T: Copy>(json: &Value, classes: &[(&str, T)], default: usize) -> Result<T> {
    let archs: Vec<&str> = json["architectures"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    match archs.iter().find_map(|a| classes.iter().find(|(n, _)| n == a)) {
        Some((_, o)) => Ok(*o),
        None if archs.is_empty() => Ok(classes[default].1),
        None => {
            let names: Vec<&str> = classes.iter().map(|c| c.0).collect();
            Err(WeightsError::Unsupported(format!("transformers architectures {archs:?}: --from hf converts {}", names.join(", "))))
        }
    }
}

/// Where a `--set KEY` goes in a preset's kwargs tree: a path of object keys.
pub type Route = fn(&Map<String, Value>, &str) -> Result<Vec<String>>;

/// The usual route: every key is a constructor kwarg.
pub fn top_level(_: &Map<String, Value>, key: &str) -> Result<Vec<String>> {
    Ok(vec![key.to_string()])
}

/// A presets file embedded at build time (recorded from timm by weights-tools/python).
fn parse_presets(text: &str, family: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| WeightsError::Unsupported(format!("embedded timm {family} presets: {e}")))
}

/// The model names of a presets file.
pub fn preset_names(text: &str, family: &str) -> Vec<String> {
    parse_presets(text, family)
        .ok()
        .and_then(|p| p["presets"].as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default()
}

/// `timm.create_model(name, **overrides)`'s kwargs from the presets file `text` of one
/// timm family, each override placed where `route` says.
pub fn timm_preset(text: &str, family: &str, name: &str, overrides: &[(String, Value)], route: Route) -> Result<TimmPreset> {
    let all = parse_presets(text, family)?;
    let arch = name.split('.').next().unwrap_or(name);
    let Some(preset) = all["presets"].get(arch) else {
        return Err(WeightsError::UnknownModel { name: name.to_string(), hint: unknown_model_hint(&all, text, family, arch) });
    };
    let mut kwargs: Map<String, Value> = preset["kwargs"].as_object().cloned().unwrap_or_default();
    // NAME.TAG: that pretrained tag's preprocessing and class count (as
    // `timm.create_model("NAME.TAG")` builds it); NAME alone: timm's default tag.
    let mut pretrained_cfg = preset["pretrained_cfg"].clone();
    if let Some((_, tag)) = name.split_once('.') {
        let tags = preset["tags"].as_object().cloned().unwrap_or_default();
        let Some(cfg) = tags.get(tag) else {
            let mut known: Vec<&String> = tags.keys().collect();
            known.sort();
            let known: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
            return Err(WeightsError::UnknownModel {
                name: name.to_string(),
                hint: format!(": timm has no pretrained tag '{tag}' for {arch} (its tags: {})", if known.is_empty() { "none".into() } else { known.join(", ") }),
            });
        };
        if let Some(n) = cfg.get("num_classes").filter(|n| n.is_u64()) {
            kwargs.insert("num_classes".into(), n.clone());
        }
        pretrained_cfg = cfg.clone();
    }
    for (k, v) in overrides {
        let path = route(&kwargs, k)?;
        insert_path(&mut kwargs, &path, v.clone());
    }
    Ok(TimmPreset { arch: arch.to_string(), kwargs, pretrained_cfg })
}

fn insert_path(map: &mut Map<String, Value>, path: &[String], v: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert(last.clone(), v);
        }
        [first, rest @ ..] => {
            let child = map.entry(first.clone()).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(m) = child {
                insert_path(m, rest, v);
            }
        }
    }
}

/// Why an unknown name is unknown: what timm builds that wgvision does not, else the
/// family's names (a short family) or the similar ones (a long one).
fn unknown_model_hint(all: &Value, text: &str, family: &str, arch: &str) -> String {
    if let Some(why) = all["unsupported"].get(arch).and_then(Value::as_str) {
        return format!(": timm builds it, but wgvision does not support it yet ({why})");
    }
    let names = preset_names(text, family);
    if names.len() <= 30 {
        return format!(" (timm {family} names: {})", names.join(", "));
    }
    let stem = arch.get(..arch.len().min(9)).unwrap_or(arch);
    let mut close: Vec<String> = names.into_iter().filter(|n| n.starts_with(stem)).take(6).collect();
    close.sort();
    if close.is_empty() {
        " (see `wgvision convert --list-models`)".into()
    } else {
        format!("; similar names: {}", close.join(", "))
    }
}
