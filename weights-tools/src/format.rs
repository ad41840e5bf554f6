//! The wgvision model file: safetensors whose metadata holds `wgvision.format` ("1") and
//! `wgvision.config` (the family config as JSON), with tensors under canonical names,
//! already in the engine's layout (matmul weights [in, out], fused qkv, folded scales).
use crate::st::{self, OutTensor};
use crate::{Result, WeightsError};
use safetensors::{Dtype, SafeTensors};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;
use wgvision_engine::ops::InputForm;
use wgvision_engine::{DType, Graph, WeightData};
use wgvision_graphs::ModelConfig;

pub const FORMAT_KEY: &str = "wgvision.format";
pub const CONFIG_KEY: &str = "wgvision.config";
pub const FORMAT_VERSION: &str = "1";

/// Metadata keys of files stored beside the weights (e.g. `wgvision.file.tokenizer.json`).
pub const FILE_KEY_PREFIX: &str = "wgvision.file.";

pub struct ModelFile {
    bytes: Vec<u8>,
    pub config: ModelConfig,
    /// Files stored at conversion (name, text), e.g. the tokenizer's vocabulary.
    pub files: Vec<(String, String)>,
    tensors: HashMap<String, (DType, Vec<usize>, Range<usize>)>,
}

impl ModelFile {
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = st::read_file(path)?;
        Self::from_bytes(bytes, &path.display().to_string())
    }

    pub fn from_bytes(bytes: Vec<u8>, path: &str) -> Result<Self> {
        let not_model = |message: String| WeightsError::NotAModelFile { path: path.to_string(), message };
        let bad = |message: String| WeightsError::NotSafetensors { path: path.to_string(), message };
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(st::explain(&e)))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        match meta.get(FORMAT_KEY) {
            Some(v) if v == FORMAT_VERSION => {}
            Some(v) => return Err(not_model(format!("format version {v}, this build reads {FORMAT_VERSION}"))),
            None => {
                return Err(not_model(format!(
                    "no '{FORMAT_KEY}' metadata; convert a checkpoint first with `wgvision convert`"
                )))
            }
        }
        let cfg = meta.get(CONFIG_KEY).ok_or_else(|| not_model(format!("no '{CONFIG_KEY}' metadata")))?;
        let config = ModelConfig::from_json(cfg).map_err(|e| not_model(e.to_string()))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(st::explain(&e)))?;
        let base = bytes.as_ptr() as usize;
        let mut tensors = HashMap::new();
        for (name, v) in st.tensors() {
            let dtype = match v.dtype() {
                Dtype::F32 => DType::F32,
                Dtype::F16 => DType::F16,
                d => return Err(WeightsError::ModelFileDtype { tensor: name, dtype: format!("{d:?}") }),
            };
            let start = v.data().as_ptr() as usize - base;
            tensors.insert(name, (dtype, v.shape().to_vec(), start..start + v.data().len()));
        }
        let mut files: Vec<(String, String)> =
            meta.iter().filter_map(|(k, v)| k.strip_prefix(FILE_KEY_PREFIX).map(|n| (n.to_string(), v.clone()))).collect();
        files.sort();
        Ok(ModelFile { bytes, config, tensors, files })
    }

    /// The names of every tensor in the file.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<WeightData<'_>> {
        self.tensors.get(name).map(|(dtype, shape, r)| WeightData {
            dtype: *dtype,
            shape: shape.clone(),
            bytes: Cow::Borrowed(&self.bytes[r.clone()]),
        })
    }

    /// (name, dtype, shape) of every tensor, sorted by name.
    pub fn tensor_list(&self) -> Vec<(String, DType, Vec<usize>)> {
        let mut v: Vec<_> = self.tensors.iter().map(|(n, (d, s, _))| (n.clone(), *d, s.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|(_, s, _)| s.iter().product::<usize>()).sum()
    }

    pub fn file_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// Check converted tensors against the graph's weights (every one present, right shape,
/// nothing extra) and write the model file; matmul weight matrices go to f16 if asked.
pub fn write_model(path: &Path, config: &ModelConfig, tensors: HashMap<String, (Vec<usize>, Vec<f32>)>, f16: bool) -> Result<()> {
    write_model_with_files(path, config, tensors, f16, &[])
}

/// `write_model`, also storing text files (name, text) in the metadata.
pub fn write_model_with_files(
    path: &Path,
    config: &ModelConfig,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    f16: bool,
    files: &[(String, String)],
) -> Result<()> {
    let graph: Graph = config.build(config.min_batch())?;
    let matmul_weights: HashSet<&str> = graph
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter().enumerate().filter(|(i, _)| n.op.input_form(*i) == InputForm::Matrix).map(|(_, &t)| graph.tensors[t].name.as_str()))
        .collect();
    let mut tensors = tensors;
    let mut out = Vec::new();
    for w in graph.weights().filter(|w| config.constant(&w.name).is_none()) {
        let (shape, data) = tensors
            .remove(&w.name)
            .ok_or_else(|| WeightsError::MissingTensor { tensor: w.name.clone(), hint: " (after conversion)".into() })?;
        if shape != w.shape {
            return Err(WeightsError::ShapeMismatch { tensor: w.name.clone(), expected: w.shape.clone(), got: shape, hint: String::new() });
        }
        out.push(OutTensor { name: w.name.clone(), shape, f16: f16 && matmul_weights.contains(w.name.as_str()), data });
    }
    if let Some((name, (shape, _))) = tensors.into_iter().next() {
        return Err(WeightsError::UnexpectedTensor { tensor: name, shape, hint: " (after conversion)".into() });
    }
    let mut meta = HashMap::from([
        (FORMAT_KEY.to_string(), FORMAT_VERSION.to_string()),
        (CONFIG_KEY.to_string(), config.to_json()),
    ]);
    for (name, text) in files {
        meta.insert(format!("{FILE_KEY_PREFIX}{name}"), text.clone());
    }
    st::write(path, &out, meta)
}
