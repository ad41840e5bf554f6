//! wgvision-graphs: one file per model family, config -> graph IR. No wgpu here: graphs
//! are plain data built from the engine's IR types.
mod blocks;
pub mod clip;
mod layers;
pub mod maxvit;
pub mod owl;
pub mod swin;
pub mod vit;
pub mod vmoe;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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

/// What a model computes, so callers need not know its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// pixel_values -> `logits` [B, classes] (or the pooled features).
    Classifier,
    /// Open-vocabulary detection: pixel_values + text queries -> `logits` [B, P, Q],
    /// `pred_boxes` [B, P, 4] (and `objectness_logits`); the text tower can run alone.
    Detector(TextQueries),
    /// Zero-shot classification (CLIP, SigLIP): pixel_values + texts -> `logits_per_image`
    /// [B, N]; the text tower (`text_embeds`) and the image side can run alone.
    ZeroShot(TextQueries),
}

/// A detector's text queries: `input_ids` [N, L] with L <= `max_len` over `vocab_size`
/// tokens, or precomputed `query_embeds` [N, `embed_dim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextQueries {
    pub vocab_size: usize,
    pub max_len: usize,
    pub embed_dim: usize,
    /// The text tower takes `attention_mask` beside `input_ids` (else it reads every
    /// position, and ids are padded to `max_len`).
    pub attention_mask: bool,
}

/// What every model family's config provides; `ModelConfig` dispatches through it.
pub trait Family {
    /// The peer model name, for reports.
    fn name(&self) -> &str;

    fn preprocess(&self) -> &Preprocess;

    /// The input image's [C, H, W].
    fn image_size(&self) -> [usize; 3];

    /// The static graph for `batch` images.
    fn build(&self, batch: usize) -> Result<Graph>;

    fn task(&self) -> Task {
        Task::Classifier
    }

    /// See `ModelConfig::build_for_inputs`; image models take `pixel_values` only.
    fn build_for_inputs(&self, shapes: &HashMap<String, Vec<usize>>) -> Result<Graph> {
        self.build(image_batch(self, shapes)?)
    }

    /// See `ModelConfig::build_with_routing`.
    fn build_with_routing(&self, _batch: usize) -> Result<Graph> {
        Err(GraphError::Unsupported(format!("routing statistics: {} is not a mixture-of-experts model", self.name())))
    }

    /// Experts per MoE layer (0: no mixture of experts).
    fn experts(&self) -> usize {
        0
    }

    /// See `ModelConfig::constant`.
    fn constant(&self, _name: &str) -> Option<Vec<f32>> {
        None
    }

    /// See `ModelConfig::min_batch`.
    fn min_batch(&self) -> usize {
        1
    }
}

/// The batch of a run's `pixel_values` [B, C, H, W], checked against the model's input.
pub(crate) fn image_batch<F: Family + ?Sized>(family: &F, shapes: &HashMap<String, Vec<usize>>) -> Result<usize> {
    let name = IMAGE_INPUT;
    let [c, h, w] = family.image_size();
    match shapes.get(name) {
        Some(s) if s.len() == 4 && s[1..] == [c, h, w] && s[0] > 0 => Ok(s[0]),
        Some(s) => Err(GraphError::Config(format!("{name} must be [B, {c}, {h}, {w}], got {s:?}"))),
        None => Err(GraphError::Config(format!("missing input {name}"))),
    }
}

/// The image input's name (transformers' and timm's).
pub const IMAGE_INPUT: &str = "pixel_values";

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
    Clip(clip::ClipConfig),
}

impl ModelConfig {
    pub fn from_json(s: &str) -> Result<Self> {
        let mut v: serde_json::Value = serde_json::from_str(s).map_err(|e| GraphError::Config(e.to_string()))?;
        // Model files written before ViT's `outputs` had `hf_model_outputs: bool`
        // (true: ViTModel's last_hidden_state + pooler_output).
        if let Some(obj) = v.as_object_mut().filter(|o| o.get("family").and_then(|f| f.as_str()) == Some("vit")) {
            if let Some(old) = obj.remove("hf_model_outputs") {
                if old.as_bool() == Some(true) {
                    obj.insert("outputs".into(), "pooler".into());
                }
            }
        }
        serde_json::from_value(v).map_err(|e| GraphError::Config(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The family's config behind the tag.
    pub fn family(&self) -> &dyn Family {
        match self {
            ModelConfig::Vit(c) => c,
            ModelConfig::Swin(c) => c,
            ModelConfig::MaxVit(c) => c,
            ModelConfig::Vmoe(c) => c,
            ModelConfig::Owl(c) => c,
            ModelConfig::Clip(c) => c,
        }
    }

    /// The static graph for `batch` images.
    pub fn build(&self, batch: usize) -> Result<Graph> {
        self.family().build(batch)
    }

    /// The graph for a run's input shapes (by input name). Image models need only
    /// `pixel_values`; detectors also take `input_ids` [B*Q, L] and `attention_mask`
    /// (whole detector), only `input_ids` + `attention_mask` (text tower), or
    /// `pixel_values` + `input_ids` + `query_embeds` (image tower and heads).
    pub fn build_for_inputs(&self, shapes: &HashMap<String, Vec<usize>>) -> Result<Graph> {
        self.family().build_for_inputs(shapes)
    }

    /// The graph with each MoE layer's routing table as an extra output `routing.{layer}`.
    pub fn build_with_routing(&self, batch: usize) -> Result<Graph> {
        self.family().build_with_routing(batch)
    }

    /// A graph weight that is computed from the config rather than stored (e.g. OWL's box
    /// bias); the loader supplies it, the converter does not write it.
    pub fn constant(&self, name: &str) -> Option<Vec<f32>> {
        self.family().constant(name)
    }

    /// The smallest batch the graph can be built for (V-MoE token routing needs whole
    /// routing groups); any model's weights are enumerated from this graph.
    pub fn min_batch(&self) -> usize {
        self.family().min_batch()
    }

    pub fn preprocess(&self) -> &Preprocess {
        self.family().preprocess()
    }

    /// Replace the preprocessing (a hub folder's processor config or timm pretrained_cfg);
    /// the input size stays the graph's. False for families without one.
    pub fn set_preprocess(&mut self, p: Preprocess) -> bool {
        let slot = match self {
            ModelConfig::Vit(c) => &mut c.preprocess,
            ModelConfig::Swin(c) => &mut c.preprocess,
            ModelConfig::MaxVit(c) => &mut c.preprocess,
            ModelConfig::Owl(c) => &mut c.preprocess,
            ModelConfig::Clip(c) => &mut c.preprocess,
            ModelConfig::Vmoe(_) => return false,
        };
        *slot = Preprocess { input_size: slot.input_size, ..p };
        true
    }

    /// Name of the input image tensor and its shape for `batch` images.
    pub fn image_input(&self, batch: usize) -> (String, Vec<usize>) {
        let [c, h, w] = self.family().image_size();
        (IMAGE_INPUT.into(), vec![batch, c, h, w])
    }

    pub fn name(&self) -> &str {
        self.family().name()
    }

    pub fn task(&self) -> Task {
        self.family().task()
    }

    /// The text tower's inputs, for a detector or a zero-shot classifier.
    pub fn task_text(&self) -> Option<TextQueries> {
        match self.task() {
            Task::Detector(q) | Task::ZeroShot(q) => Some(q),
            Task::Classifier => None,
        }
    }

    /// Whether the model has a text tower (a detector or a zero-shot classifier).
    pub fn takes_text(&self) -> bool {
        self.task_text().is_some()
    }

    /// Whether the model detects (takes text queries) rather than classifies.
    pub fn is_detector(&self) -> bool {
        matches!(self.task(), Task::Detector(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ViT config as model files before `outputs` stored it still loads.
    #[test]
    fn legacy_vit_hf_model_outputs_loads() {
        let base = r#"{"family":"vit","name":"x","img_size":[32,32],"patch_size":8,"in_chans":3,"num_classes":0,"global_pool":"token","embed_dim":48,"depth":1,"num_heads":3,"mlp_hidden":96,"qkv_bias":true,"proj_bias":true,"patch_bias":true,"class_token":true,"reg_tokens":0,"no_embed_class":false,"pos_embed":true,"pre_norm":false,"norm":true,"fc_norm":false,"norm_eps":1e-12,"act":"gelu","layer_scale":false,"preprocess":{"input_size":[3,32,32],"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5],"crop_pct":1.0,"crop_mode":"squash","interpolation":"bilinear"}"#;
        for (flag, want) in [("true", vit::VitOutputs::Pooler), ("false", vit::VitOutputs::Logits)] {
            let c = ModelConfig::from_json(&format!("{base},\"hf_model_outputs\":{flag}}}")).unwrap();
            assert!(matches!(&c, ModelConfig::Vit(v) if v.outputs == want), "{flag}");
        }
    }
}
