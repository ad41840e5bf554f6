//! Contrastive image-text models as transformers computes them: CLIP (Radford et al. 2021;
//! `CLIPVisionModel`, `CLIPVisionModelWithProjection`, `CLIPModel`) and SigLIP (Zhai et al.
//! 2023; `SiglipVisionModel`, `SiglipModel`).
//! - CLIP image tower: class token, pre-LayerNorm, pre-norm encoder; `pooler_output` is the
//!   post-LayerNorm of the class token, `image_embeds` its projection (no bias).
//! - SigLIP image tower: no class token, post-LayerNorm on every token; `pooler_output` is
//!   the attention-pooling (MAP) head: one learned query attends over the tokens, then
//!   LayerNorm + MLP with a residual. `image_embeds` is that output.
//! - Text towers: CLIP's is causal with a padding mask, pooled at the end-of-text token,
//!   projected without bias; SigLIP's is unmasked (its processor pads to the full length),
//!   pooled at the last position, then a Linear `head`.
//! - `CLIPModel` / `SiglipModel`: both embeddings L2-normalised, `logits_per_image` =
//!   exp(logit_scale) * cosine (+ logit_bias for SigLIP) and `logits_per_text` its transpose.
use crate::blocks::{Mixer, PatchEmbed, Tokens, Tower};
use crate::layers::{attention_pool, embed_tokens, eos_pool, l2_normalize, layer_norm, linear, pool, similarity};
use crate::{image_batch, Family, GraphError, Preprocess, Result, Task, TextQueries, IMAGE_INPUT};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use wgvision_engine::{Activation, Graph, GraphBuilder, PoolKind, TensorId};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClipKind {
    Clip,
    Siglip,
}

/// Which transformers class: what the graph outputs.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClipOutputs {
    /// CLIPVisionModel / SiglipVisionModel: `last_hidden_state`, `pooler_output`.
    Vision,
    /// CLIPVisionModelWithProjection: `last_hidden_state`, `image_embeds`.
    VisionProjection,
    /// CLIPModel / SiglipModel: both towers and the similarity logits.
    Model,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextTower {
    pub tower: Tower,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClipConfig {
    pub name: String,
    pub kind: ClipKind,
    pub outputs: ClipOutputs,
    pub image_size: usize,
    pub patch_size: usize,
    pub vision: Tower,
    /// CLIPModel / SiglipModel only.
    pub text: Option<TextTower>,
    /// The embedding width (CLIP's projections; SigLIP's text head = the vision width).
    pub projection_dim: usize,
    pub preprocess: Preprocess,
}

/// The graph inputs of the text tower and of the similarity from cached text embeddings.
pub const INPUT_IDS: &str = "input_ids";
pub const ATTENTION_MASK: &str = "attention_mask";
pub const TEXT_EMBEDS: &str = "text_embeds";

impl ClipConfig {
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(GraphError::Config(m));
        if self.patch_size == 0 || self.image_size < self.patch_size {
            return bad(format!("image_size {} must hold at least one {} patch", self.image_size, self.patch_size));
        }
        let mut towers = vec![("vision", &self.vision)];
        if let Some(t) = &self.text {
            towers.push(("text", &t.tower));
        }
        for (what, t) in towers {
            if t.num_heads == 0 || !t.hidden_size.is_multiple_of(t.num_heads) || t.num_layers == 0 || t.intermediate_size == 0 {
                return bad(format!("{what}: hidden_size {} is not divisible by num_attention_heads {} (or no layers / no MLP width)", t.hidden_size, t.num_heads));
            }
        }
        if let Some(t) = &self.text {
            if t.vocab_size == 0 || t.max_position_embeddings == 0 {
                return bad("text: vocab_size and max_position_embeddings must be positive".into());
            }
        }
        if self.projection_dim == 0 {
            return bad("projection_dim must be positive".into());
        }
        if (self.outputs == ClipOutputs::Model) != self.text.is_some() {
            return bad("a text tower belongs to CLIPModel / SiglipModel only".into());
        }
        if self.kind == ClipKind::Siglip && self.outputs == ClipOutputs::VisionProjection {
            return bad("SigLIP has no projection model".into());
        }
        if self.kind == ClipKind::Siglip && self.text.is_some() && self.projection_dim != self.vision.hidden_size {
            return bad(format!("SigLIP's text head must map to the vision width {}", self.vision.hidden_size));
        }
        Ok(())
    }

    /// pixels -> (last_hidden_state, pooler_output).
    fn vision_tower(&self, g: &mut GraphBuilder, pixels: TensorId) -> Result<(TensorId, TensorId)> {
        let v = &self.vision;
        let (d, eps) = (v.hidden_size, v.layer_norm_eps);
        let clip = self.kind == ClipKind::Clip;
        let embed = PatchEmbed {
            patch: self.patch_size,
            pad: false,
            dim: d,
            patchify: "vision.patchify",
            proj: "vision.patch_embedding",
            proj_bias: !clip,
            tokens: Some(Tokens {
                name: "vision.tokens",
                prefix: clip.then_some(("vision.class_embedding", 1)),
                pos: Some("vision.position_embedding"),
                pos_start: 0,
            }),
        };
        let mut t = embed.build(g, pixels)?; // (B, T, D)
        if clip {
            t = layer_norm(g, t, "vision.pre_norm", d, eps)?;
        }
        let t = v.encoder(g, t, "vision", || Mixer::Global { causal: false, key_mask: None })?;
        if clip {
            let cls = pool(g, t, "vision.class_token", PoolKind::Token(0))?;
            let pooled = layer_norm(g, cls, "vision.post_norm", d, eps)?;
            return Ok((t, pooled));
        }
        let t = layer_norm(g, t, "vision.post_norm", d, eps)?;
        // MAP head: the probe's query is a weight (input-independent); keys and values of
        // every token; then out_proj, and LayerNorm + MLP with a residual.
        let kv = linear(g, t, "vision.head.kv", (d, 2 * d), true, Activation::None, None)?; // (B, T, 2D)
        let att = attention_pool(g, kv, "vision.head", v.num_heads)?; // (B, D)
        let res = linear(g, att, "vision.head.out", (d, d), true, Activation::None, None)?;
        let h = layer_norm(g, res, "vision.head.norm", d, eps)?;
        let h = linear(g, h, "vision.head.mlp.fc1", (d, v.intermediate_size), true, v.act, None)?;
        let pooled = linear(g, h, "vision.head.mlp.fc2", (v.intermediate_size, d), true, Activation::None, Some(res))?;
        Ok((t, pooled))
    }

    fn text_tower_of(&self) -> Result<&TextTower> {
        self.text.as_ref().ok_or_else(|| GraphError::Config(format!("{} has no text tower", self.name)))
    }

    /// ids [N, L] (and for CLIP the attention mask) -> text embeddings [N, P], unnormalised.
    fn text_tower(&self, g: &mut GraphBuilder, ids: TensorId, mask: Option<TensorId>) -> Result<TensorId> {
        let tt = self.text_tower_of()?;
        let d = tt.tower.hidden_size;
        let table = g.weight("text.token_embedding", &[tt.vocab_size, d])?;
        let pos = g.weight("text.position_embedding", &[tt.max_position_embeddings, d])?;
        let t = embed_tokens(g, ids, "text.embed", table, pos)?; // (N, L, D)
        let clip = self.kind == ClipKind::Clip;
        let t = tt.tower.encoder(g, t, "text", || Mixer::Global { causal: clip, key_mask: mask })?;
        let t = layer_norm(g, t, "text.final_norm", d, tt.tower.layer_norm_eps)?;
        if clip {
            let pooled = eos_pool(g, t, "text.eos_pool", ids)?; // (N, D)
            linear(g, pooled, "text.projection", (d, self.projection_dim), false, Activation::None, None)
        } else {
            let len = g.shape(ids)[1];
            let pooled = pool(g, t, "text.last_token", PoolKind::Token(len - 1))?;
            linear(g, pooled, "text.head", (d, self.projection_dim), true, Activation::None, None)
        }
    }

    /// The image embedding the similarity compares: CLIP's projection of pooler_output,
    /// SigLIP's pooler_output.
    fn image_embeds(&self, g: &mut GraphBuilder, pooled: TensorId) -> Result<TensorId> {
        match self.kind {
            ClipKind::Clip => linear(g, pooled, "vision.projection", (self.vision.hidden_size, self.projection_dim), false, Activation::None, None),
            ClipKind::Siglip => Ok(pooled),
        }
    }

    fn normalize(g: &mut GraphBuilder, x: TensorId, name: &str) -> Result<TensorId> {
        l2_normalize(g, x, name)
    }

    fn logits(&self, g: &mut GraphBuilder, img: TensorId, txt: TensorId) -> Result<()> {
        let scale = g.weight("logit_scale", &[1])?;
        let bias = match self.kind {
            ClipKind::Siglip => Some(g.weight("logit_bias", &[1])?),
            ClipKind::Clip => None,
        };
        for (name, a, b) in [("logits_per_image", img, txt), ("logits_per_text", txt, img)] {
            let l = similarity(g, a, name, b, scale, bias)?;
            g.output(l, name)?;
        }
        Ok(())
    }

    fn text_inputs(&self, g: &mut GraphBuilder, n: usize, seq: usize) -> Result<(TensorId, Option<TensorId>)> {
        let tt = self.text_tower_of()?;
        let max = tt.max_position_embeddings;
        let exact = self.kind == ClipKind::Siglip;
        if n == 0 || seq == 0 || seq > max || (exact && seq != max) {
            return Err(GraphError::Config(format!(
                "input_ids must be [N, L] with N >= 1 and {}",
                if exact { format!("L = {max} (SigLIP pads every text to its full length)") } else { format!("1 <= L <= {max}") }
            )));
        }
        let ids = g.input(INPUT_IDS, &[n, seq])?;
        let mask = match self.kind {
            ClipKind::Clip => Some(g.input(ATTENTION_MASK, &[n, seq])?),
            ClipKind::Siglip => None,
        };
        Ok((ids, mask))
    }

    /// The whole model for `batch` images and `n` texts of length `seq`.
    pub fn build_for(&self, batch: usize, n: usize, seq: usize) -> Result<Graph> {
        self.check()?;
        let mut g = Graph::builder();
        let [c, h, w] = self.image_size();
        let pixels = g.input(IMAGE_INPUT, &[batch, c, h, w])?;
        let (last, pooled) = self.vision_tower(&mut g, pixels)?;
        match self.outputs {
            ClipOutputs::Vision => {
                g.output(last, "last_hidden_state")?;
                g.output(pooled, "pooler_output")?;
            }
            ClipOutputs::VisionProjection => {
                g.output(last, "last_hidden_state")?;
                let e = self.image_embeds(&mut g, pooled)?;
                g.output(e, "image_embeds")?;
            }
            ClipOutputs::Model => {
                let (ids, mask) = self.text_inputs(&mut g, n, seq)?;
                let img = self.image_embeds(&mut g, pooled)?;
                let img = Self::normalize(&mut g, img, "image_embeds.normalize")?;
                let txt = self.text_tower(&mut g, ids, mask)?;
                let txt = Self::normalize(&mut g, txt, "text_embeds.normalize")?;
                self.logits(&mut g, img, txt)?;
                g.output(txt, "text_embeds")?;
                g.output(img, "image_embeds")?;
            }
        }
        Ok(g.finish())
    }

    /// The text tower alone: normalised `text_embeds` [N, P] (computed once per label set).
    pub fn build_text(&self, n: usize, seq: usize) -> Result<Graph> {
        self.check()?;
        let mut g = Graph::builder();
        let (ids, mask) = self.text_inputs(&mut g, n, seq)?;
        let txt = self.text_tower(&mut g, ids, mask)?;
        let txt = Self::normalize(&mut g, txt, "text_embeds.normalize")?;
        g.output(txt, "text_embeds")?;
        Ok(g.finish())
    }

    /// The image tower and the logits against precomputed normalised `text_embeds` [N, P].
    pub fn build_image(&self, batch: usize, n: usize) -> Result<Graph> {
        self.check()?;
        self.text_tower_of()?;
        let mut g = Graph::builder();
        let [c, h, w] = self.image_size();
        let pixels = g.input(IMAGE_INPUT, &[batch, c, h, w])?;
        let txt = g.input(TEXT_EMBEDS, &[n, self.projection_dim])?;
        let (_, pooled) = self.vision_tower(&mut g, pixels)?;
        let img = self.image_embeds(&mut g, pooled)?;
        let img = Self::normalize(&mut g, img, "image_embeds.normalize")?;
        self.logits(&mut g, img, txt)?;
        g.output(img, "image_embeds")?;
        Ok(g.finish())
    }

    fn default_seq(&self) -> usize {
        self.text.as_ref().map_or(1, |t| t.max_position_embeddings)
    }
}

impl Family for ClipConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    fn image_size(&self) -> [usize; 3] {
        [3, self.image_size, self.image_size]
    }

    /// One image and one text of full length (weights enumeration, inspect, bench).
    fn build(&self, batch: usize) -> Result<Graph> {
        self.build_for(batch, 1, self.default_seq())
    }

    fn task(&self) -> Task {
        match (&self.text, self.outputs) {
            (Some(t), ClipOutputs::Model) => Task::ZeroShot(TextQueries { vocab_size: t.vocab_size, max_len: t.max_position_embeddings, embed_dim: self.projection_dim, attention_mask: self.kind == ClipKind::Clip }),
            _ => Task::Classifier,
        }
    }

    /// pixel_values only (vision classes); input_ids (+ attention_mask) only: the text
    /// tower; pixel_values + text_embeds: image tower and logits; all: the whole model.
    fn build_for_inputs(&self, shapes: &HashMap<String, Vec<usize>>) -> Result<Graph> {
        if self.outputs != ClipOutputs::Model {
            return self.build(image_batch(self, shapes)?);
        }
        let ids = shapes.get(INPUT_IDS).map(Vec::as_slice);
        if !shapes.contains_key(IMAGE_INPUT) {
            return match ids {
                Some([n, l]) => self.build_text(*n, *l),
                _ => Err(GraphError::Config("the text tower needs input_ids [N, L]".into())),
            };
        }
        let batch = image_batch(self, shapes)?;
        match (shapes.get(TEXT_EMBEDS).map(Vec::as_slice), ids) {
            (Some([n, _]), _) => self.build_image(batch, *n),
            (None, Some([n, l])) => self.build_for(batch, *n, *l),
            _ => Err(GraphError::Config("CLIPModel / SiglipModel need input_ids [N, L] (or text_embeds [N, P]) beside pixel_values".into())),
        }
    }
}
