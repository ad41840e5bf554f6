//! wgvision: portable vision-transformer inference on wgpu.
//!
//! ```no_run
//! let gpu = wgvision::Gpu::new(None)?;
//! let model = wgvision::Model::load("vit.safetensors".as_ref(), gpu)?;
//! let pixels = vec![0.0f32; 3 * 224 * 224];
//! let out = model.run(&pixels, &[1, 3, 224, 224])?;
//! println!("{:?}", &out[0].data[..5]);
//! # Ok::<(), wgvision::Error>(())
//! ```
//!
//! An app that already renders with wgpu hands in its own device with
//! [`Gpu::from_wgpu`] (use the re-exported [`wgpu`], so both name the same version):
//!
//! ```no_run
//! use std::sync::Arc;
//! use wgvision::wgpu;
//! # fn app_device() -> (wgpu::Adapter, wgpu::Device, wgpu::Queue) { unimplemented!() }
//! let (adapter, device, queue) = app_device(); // created with required_limits: adapter.limits()
//! let gpu = Arc::new(wgvision::Gpu::from_wgpu(adapter, device.clone(), queue.clone())?);
//! let model = wgvision::Model::load("vit.safetensors".as_ref(), gpu)?;
//! # Ok::<(), wgvision::Error>(())
//! ```
pub mod detect;
pub mod image_input;
pub mod sentencepiece;
pub mod tokenizer;
pub mod zero_shot;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use thiserror::Error;
pub use wgvision_engine::{self as engine, Backend, Compiled, Gpu, LimitsCap, Tensor};
/// The wgpu wgvision is built on (`Gpu::from_wgpu` takes its Adapter, Device and Queue).
pub use wgvision_engine::wgpu;
pub use wgvision_graphs::{self as graphs, Family, ModelConfig, Task, TextQueries};
pub use wgvision_weights::{self as weights, format::ModelFile};
use wgvision_engine::{CompileOptions, DType, GpuWeights, WeightData};

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] wgvision_engine::EngineError),
    #[error(transparent)]
    Graph(#[from] wgvision_graphs::GraphError),
    #[error(transparent)]
    Weights(#[from] wgvision_weights::WeightsError),
    #[error("input {tensor}: {message}")]
    Input { tensor: String, message: String },
    #[error("image {path}: {message}")]
    Image { path: String, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A compiled graph's key: the sorted input shapes, whether routing tables are extra outputs,
/// and whether it is compiled for reading back every node (`run_inputs_debug`).
type CompileKey = (Vec<(String, Vec<usize>)>, bool, bool);

/// A loaded model: weights resident on the device, compiled per batch size on first use.
/// `run` may be called from several threads; runs of one model are serialized.
pub struct Model {
    gpu: Arc<Gpu>,
    pub config: ModelConfig,
    weights: GpuWeights,
    compiled: Mutex<HashMap<CompileKey, Arc<Compiled>>>,
    /// A compiled graph owns its input/output buffers, so runs are serialized.
    run_lock: Mutex<()>,
    /// The classifier's class names (`class_names`).
    class_names: Option<Vec<String>>,
}

impl Model {
    /// Load a model file produced by `wgvision convert`.
    pub fn load(path: &Path, gpu: Arc<Gpu>) -> Result<Model> {
        let file = ModelFile::open(path)?;
        Self::from_file(gpu, &file)
    }

    /// Build from an opened model file. Every tensor in the file must be one the config's
    /// graph uses: a config that names fewer blocks than the file holds is an error, not
    /// a shallower model.
    pub fn from_file(gpu: Arc<Gpu>, file: &ModelFile) -> Result<Model> {
        let mut used = std::collections::HashSet::new();
        let stored = file.files.iter().find(|(n, _)| n == wgvision_weights::labels::LABELS_FILE).map(|(_, t)| t.as_str());
        let m = Self::with_labels(gpu, file.config.clone(), stored, |name| {
            used.insert(name.to_string());
            file.get(name)
        })?;
        let mut unused: Vec<&str> = file.tensor_names().filter(|n| !used.contains(*n)).collect();
        unused.sort();
        if let Some(first) = unused.first() {
            return Err(Error::Weights(wgvision_weights::WeightsError::Unsupported(format!(
                "the model file holds {} tensor(s) its config does not use (first: '{first}'); the config and the weights disagree (e.g. depth)",
                unused.len()
            ))));
        }
        Ok(m)
    }

    /// Build from a config and any source of weights (used by bench presets).
    pub fn from_weights<'a>(gpu: Arc<Gpu>, config: ModelConfig, lookup: impl FnMut(&str) -> Option<WeightData<'a>>) -> Result<Model> {
        Self::with_labels(gpu, config, None, lookup)
    }

    /// `from_weights` with the class names stored at conversion (if any).
    fn with_labels<'a>(gpu: Arc<Gpu>, config: ModelConfig, labels: Option<&str>, mut lookup: impl FnMut(&str) -> Option<WeightData<'a>>) -> Result<Model> {
        let graph = config.build(config.min_batch())?;
        // Constants of the config (e.g. OWL's box bias) are computed here, not stored.
        let weights = GpuWeights::upload(&gpu, &graph, |name| match config.constant(name) {
            Some(v) => {
                let shape = graph.weights().find(|w| w.name == name).map(|w| w.shape.clone()).unwrap_or_default();
                Some(WeightData { dtype: DType::F32, shape, bytes: bytemuck::cast_slice(&v).to_vec().into() })
            }
            None => lookup(name),
        })?;
        // A classifier's classes: the last dimension of its `logits` output (detectors'
        // logits are per query, not classes).
        let classes = (!config.is_detector())
            .then(|| graph.outputs.iter().find(|&&t| graph.tensors[t].name == "logits"))
            .flatten()
            .and_then(|&t| graph.tensors[t].shape.last().copied());
        let class_names = classes.and_then(|c| wgvision_weights::labels::class_names(labels, c));
        Ok(Model { gpu, config, weights, compiled: Mutex::new(HashMap::new()), run_lock: Mutex::new(()), class_names })
    }

    /// The class names of a classifier, in class-index order: those stored at conversion
    /// (transformers' `id2label`), or ImageNet-1k's for a 1000-class model without names
    /// (as timm's ImageNetInfo lists them). None when unknown.
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// A model with deterministic synthetic weights (benchmarks need no download).
    pub fn synthetic(gpu: Arc<Gpu>, config: ModelConfig, dtype: DType) -> Result<Model> {
        let graph = config.build(config.min_batch())?;
        let shapes: HashMap<String, Vec<usize>> = graph.weights().map(|w| (w.name.clone(), w.shape.clone())).collect();
        Self::from_weights(gpu, config, |name| {
            let shape = shapes.get(name)?.clone();
            let n: usize = shape.iter().product();
            let mut s = name.bytes().fold(0x9E3779B97F4A7C15u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001B3)) | 1;
            let ones = name.ends_with("norm1.weight") || name.ends_with("norm2.weight") || name.ends_with("norm.weight");
            let vals = (0..n).map(move |_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                if ones { 1.0 + 0.1 * u } else { 0.04 * u }
            });
            let bytes: Vec<u8> = match dtype {
                DType::F32 => vals.flat_map(f32::to_le_bytes).collect(),
                DType::F16 => vals.flat_map(|v| half::f16::from_f32(v).to_le_bytes()).collect(),
            };
            Some(WeightData { dtype, shape, bytes: bytes.into() })
        })
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Device bytes the weights take: as uploaded, plus any buffer a compiled graph
    /// needed beside a matrix kept as a texture.
    pub fn weight_bytes(&self) -> u64 {
        self.weights.bytes + self.weights.extra_bytes()
    }

    /// The graph compiled for `batch` images (compiled once, then cached).
    pub fn compiled(&self, batch: usize) -> Result<Arc<Compiled>> {
        if batch == 0 {
            return Err(Error::Input { tensor: "pixel_values".into(), message: "batch size must be at least 1".into() });
        }
        // Detectors also take text inputs: use `compiled_for_inputs` with their shapes.
        self.compiled_for(vec![self.config.image_input(batch)], false, false)
    }

    /// The graph for these named input shapes (see `ModelConfig::build_for_inputs`).
    pub fn compiled_for_inputs(&self, shapes: Vec<(String, Vec<usize>)>) -> Result<Arc<Compiled>> {
        self.compiled_for(shapes, false, false)
    }

    /// The graph compiled for these input shapes (compiled once, then cached).
    /// `debug`: every node keeps its output in a buffer (no node writes its output
    /// straight into the next one's texture), so `run_debug` can read all of them back.
    fn compiled_for(&self, mut shapes: Vec<(String, Vec<usize>)>, routing: bool, debug: bool) -> Result<Arc<Compiled>> {
        shapes.sort();
        let key = (shapes, routing, debug);
        let mut map = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let graph = if routing {
            let batch = key.0.iter().find(|(n, _)| n == "pixel_values").map_or(1, |(_, s)| s[0]);
            self.config.build_with_routing(batch)?
        } else {
            self.config.build_for_inputs(&key.0.iter().cloned().collect())?
        };
        let opts = CompileOptions { fuse_textures: !debug, ..Default::default() };
        let c = Arc::new(Compiled::with_options(self.gpu.clone(), &graph, &self.weights, &opts)?);
        map.insert(key, c.clone());
        Ok(c)
    }

    /// Run on named inputs (`pixel_values` [B, C, H, W]; detectors also `input_ids`
    /// [B*Q, L] and `attention_mask` [B*Q, L], token ids as f32 values).
    pub fn run_inputs(&self, inputs: &[(&str, &[f32], &[usize])]) -> Result<Vec<Tensor>> {
        let c = self.checked(inputs, false)?;
        let _one_run_at_a_time = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let named: Vec<(&str, &[f32])> = inputs.iter().map(|(n, d, _)| (*n, *d)).collect();
        Ok(c.run(&named)?)
    }

    /// `run_inputs`, node by node, also reading back every node's output (named by node;
    /// for comparing a conversion with its peer layer by layer).
    pub fn run_inputs_debug(&self, inputs: &[(&str, &[f32], &[usize])]) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let c = self.checked(inputs, true)?;
        let _one_run_at_a_time = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let named: Vec<(&str, &[f32])> = inputs.iter().map(|(n, d, _)| (*n, *d)).collect();
        Ok(c.run_debug(&named)?)
    }

    /// Check named inputs against the model and return the graph compiled for them.
    fn checked(&self, inputs: &[(&str, &[f32], &[usize])], debug: bool) -> Result<Arc<Compiled>> {
        let pixels = inputs.iter().find(|(n, _, _)| *n == "pixel_values");
        match pixels {
            Some((_, data, shape)) => {
                self.check_pixels(data.len(), shape)?;
            }
            // A detector's or zero-shot model's text tower runs on its own.
            None if self.config.takes_text() => {}
            None => return Err(Error::Input { tensor: "pixel_values".into(), message: "missing".into() }),
        }
        for (name, data, shape) in inputs {
            if shape.iter().product::<usize>() != data.len() {
                return Err(Error::Input { tensor: name.to_string(), message: format!("shape {shape:?} does not match {} values", data.len()) });
            }
        }
        let text = match self.config.task() {
            Task::Detector(q) => Some((q, true)),
            // Zero-shot models may take cached text_embeds instead of ids.
            Task::ZeroShot(q) => Some((q, false)),
            Task::Classifier => None,
        };
        if let Some((q, required)) = text {
            match inputs.iter().find(|(n, _, _)| *n == "input_ids") {
                None if required => {
                    return Err(Error::Input { tensor: "input_ids".into(), message: "missing: a detector needs text queries".into() });
                }
                None => {}
                Some((_, ids, _)) => {
                    if let Some(bad) = ids.iter().find(|&&v| v < 0.0 || v.fract() != 0.0 || v as usize >= q.vocab_size) {
                        return Err(Error::Input { tensor: "input_ids".into(), message: format!("token id {bad} is outside the vocabulary of {}", q.vocab_size) });
                    }
                }
            }
        }
        let shapes = inputs.iter().map(|(n, _, s)| (n.to_string(), s.to_vec())).collect();
        self.compiled_for(shapes, false, debug)
    }

    /// Check an image batch against the model's input and return the batch size.
    pub fn check_pixels(&self, data_len: usize, shape: &[usize]) -> Result<usize> {
        let (name, want) = self.config.image_input(1);
        let bad = |message: String| Error::Input { tensor: name.clone(), message };
        if shape.len() != 4 || shape[1..] != want[1..] {
            return Err(bad(format!("expected shape [B, {}, {}, {}], got {shape:?}", want[1], want[2], want[3])));
        }
        if shape[0] == 0 {
            return Err(bad("batch size must be at least 1".into()));
        }
        if shape.iter().product::<usize>() != data_len {
            return Err(bad(format!("shape {shape:?} does not match {data_len} values")));
        }
        Ok(shape[0])
    }

    /// Run on a pixel batch [B, C, H, W] (NCHW, already preprocessed).
    pub fn run(&self, pixels: &[f32], shape: &[usize]) -> Result<Vec<Tensor>> {
        self.run_inputs(&[("pixel_values", pixels, shape)])
    }
}

/// One MoE layer's routing, summarized the way ViMoE analyses it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RoutingStats {
    pub layer: usize,
    /// Kept choices per expert.
    pub tokens_per_expert: Vec<usize>,
    /// Choices dropped because their expert was full.
    pub dropped: usize,
    /// Mean over tokens of the top-1 gate.
    pub mean_top1_gate: f64,
}

impl RoutingStats {
    /// From a routing table [T, K, 3] (dispatch row or -1, gate, expert).
    pub fn from_table(layer: usize, table: &Tensor, experts: usize) -> RoutingStats {
        let k = table.shape.get(1).copied().unwrap_or(1).max(1);
        let mut tokens_per_expert = vec![0; experts];
        let (mut dropped, mut top1, mut n) = (0, 0.0, 0usize);
        for (i, c) in table.data.chunks_exact(3).enumerate() {
            if c[0] >= 0.0 {
                if let Some(x) = tokens_per_expert.get_mut(c[2] as usize) {
                    *x += 1;
                }
            } else {
                dropped += 1;
            }
            if i % k == 0 {
                top1 += c[1] as f64;
                n += 1;
            }
        }
        RoutingStats { layer, tokens_per_expert, dropped, mean_top1_gate: top1 / n.max(1) as f64 }
    }
}

impl Model {
    /// Run and also return each MoE layer's routing statistics (V-MoE models only).
    pub fn run_with_routing(&self, pixels: &[f32], shape: &[usize]) -> Result<(Vec<Tensor>, Vec<RoutingStats>)> {
        self.check_pixels(pixels.len(), shape)?;
        let c = self.compiled_for(vec![("pixel_values".into(), shape.to_vec())], true, false)?;
        let _one_run_at_a_time = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let out = c.run(&[("pixel_values", pixels)])?;
        let experts = self.config.family().experts();
        let (tables, outputs): (Vec<Tensor>, Vec<Tensor>) = out.into_iter().partition(|t| t.name.starts_with("routing."));
        let stats = tables
            .iter()
            .map(|t| RoutingStats::from_table(t.name["routing.".len()..].parse().unwrap_or(0), t, experts))
            .collect();
        Ok((outputs, stats))
    }
}

/// Indices and scores of the k largest values, highest first (ties to the lower index).
pub fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, scores[i])).collect()
}

pub fn softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}
