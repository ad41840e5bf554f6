//! wgvision-graphs: one file per model family, config -> graph IR. No wgpu here: graphs
//! are plain data built from the engine's IR types.
mod blocks;
mod layers;
pub mod maxvit;
pub mod owl;
pub mod swin;
pub mod vit;
pub mod vmoe;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use wgvision_engine::{EngineError, Graph};

#[derive(Debug, Error)]
pub enum GraphError {
    #[error("model config: {0}")]
    Config(String),
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub type Result<T> = std::result::Result<T, GraphError>;

/// Input preprocessing recorded at conversion (timm's pretrained cfg).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// [C, H, W]
    pub input_size: [usize; 3],
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub crop_pct: f32,
    /// "center" or "squash" (resize the whole image to the input size)
    pub crop_mode: String,
    pub interpolation: String,
}

/// A model file's config: the family tag selects the builder.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum ModelConfig {
    Vit(vit::VitConfig),
    Swin(swin::SwinConfig),
    #[serde(rename = "maxvit")]
    MaxVit(maxvit::MaxVitConfig),
    Vmoe(vmoe::VmoeConfig),
    Owl(owl::OwlConfig),
}

impl ModelConfig {
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| GraphError::Config(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The static graph for `batch` images.
    pub fn build(&self, batch: usize) -> Result<Graph> {
        match self {
            ModelConfig::Vit(c) => c.build(batch),
            ModelConfig::Swin(c) => c.build(batch),
            ModelConfig::MaxVit(c) => c.build(batch),
            ModelConfig::Vmoe(c) => c.build(batch),
            ModelConfig::Owl(c) => c.build(batch),
        }
    }

    /// The graph for a run's input shapes (by input name). Image models need only
    /// `pixel_values`; detectors also take `input_ids` [B*Q, L] and `attention_mask`
    /// (whole detector), only `input_ids` + `attention_mask` (text tower), or
    /// `pixel_values` + `input_ids` + `query_embeds` (image tower and heads).
    pub fn build_for_inputs(&self, shapes: &std::collections::HashMap<String, Vec<usize>>) -> Result<Graph> {
        if let (ModelConfig::Owl(c), None) = (self, shapes.get("pixel_values")) {
            return match shapes.get("input_ids").map(Vec::as_slice) {
                Some([n, l]) => c.build_text(*n, *l),
                _ => Err(GraphError::Config("the text tower needs input_ids [N, L] and attention_mask [N, L]".into())),
            };
        }
        let (name, want) = self.image_input(1);
        let batch = match shapes.get(&name) {
            Some(s) if s.len() == 4 && s[1..] == want[1..] && s[0] > 0 => s[0],
            Some(s) => return Err(GraphError::Config(format!("{name} must be [B, {}, {}, {}], got {s:?}", want[1], want[2], want[3]))),
            None => return Err(GraphError::Config(format!("missing input {name}"))),
        };
        match self {
            ModelConfig::Owl(c) => {
                let ids = shapes.get("input_ids").ok_or_else(|| GraphError::Config("missing input input_ids [B*Q, L]".into()))?;
                match ids.as_slice() {
                    [n, l] if *n > 0 && n % batch == 0 && shapes.contains_key("query_embeds") => c.build_image(batch, n / batch, *l),
                    [n, l] if *n > 0 && n % batch == 0 => c.build_for(batch, n / batch, *l),
                    _ => Err(GraphError::Config(format!("input_ids must be [B*Q, L] with B = {batch}, got {ids:?}"))),
                }
            }
            _ => self.build(batch),
        }
    }

    /// The graph with each MoE layer's routing table as an extra output `routing.{layer}`.
    pub fn build_with_routing(&self, batch: usize) -> Result<Graph> {
        match self {
            ModelConfig::Vmoe(c) => c.build_with(batch, true),
            _ => Err(GraphError::Unsupported(format!("routing statistics: {} is not a mixture-of-experts model", self.name()))),
        }
    }

    /// A graph weight that is computed from the config rather than stored (e.g. OWL's box
    /// bias); the loader supplies it, the converter does not write it.
    pub fn constant(&self, name: &str) -> Option<Vec<f32>> {
        match self {
            ModelConfig::Owl(c) => c.constant(name),
            _ => None,
        }
    }

    /// The smallest batch the graph can be built for (V-MoE token routing needs whole
    /// routing groups); any model's weights are enumerated from this graph.
    pub fn min_batch(&self) -> usize {
        match self {
            ModelConfig::Vmoe(c) => c.min_batch(),
            _ => 1,
        }
    }

    pub fn preprocess(&self) -> &Preprocess {
        match self {
            ModelConfig::Vit(c) => &c.preprocess,
            ModelConfig::Swin(c) => &c.preprocess,
            ModelConfig::MaxVit(c) => &c.preprocess,
            ModelConfig::Vmoe(c) => &c.preprocess,
            ModelConfig::Owl(c) => &c.preprocess,
        }
    }

    /// Name of the input image tensor and its shape for `batch` images.
    pub fn image_input(&self, batch: usize) -> (String, Vec<usize>) {
        match self {
            ModelConfig::Vit(c) => ("pixel_values".into(), vec![batch, c.in_chans, c.img_size[0], c.img_size[1]]),
            ModelConfig::Swin(c) => ("pixel_values".into(), vec![batch, c.in_chans, c.img_size[0], c.img_size[1]]),
            ModelConfig::MaxVit(c) => ("pixel_values".into(), vec![batch, c.in_chans, c.img_size[0], c.img_size[1]]),
            ModelConfig::Vmoe(c) => ("pixel_values".into(), vec![batch, 3, c.img_size[0], c.img_size[1]]),
            ModelConfig::Owl(c) => ("pixel_values".into(), vec![batch, 3, c.image_size, c.image_size]),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            ModelConfig::Vit(c) => &c.name,
            ModelConfig::Swin(c) => &c.name,
            ModelConfig::MaxVit(c) => &c.name,
            ModelConfig::Vmoe(c) => &c.name,
            ModelConfig::Owl(c) => &c.name,
        }
    }
}
