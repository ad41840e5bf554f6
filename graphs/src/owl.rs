//! OWL-ViT (Minderer et al. 2022) and OWLv2 open-vocabulary detection as transformers'
//! `OwlViTForObjectDetection` / `Owlv2ForObjectDetection` compute it.
//! - Image tower: CLIP ViT with pre- and post-LayerNorm; every output token goes through
//!   the post-LayerNorm, patch tokens are multiplied by the class token, then the
//!   detector's LayerNorm gives the per-patch features.
//! - Text tower: CLIP text transformer with a causal and a padding mask, final LayerNorm,
//!   the end-of-text token's row (argmax of the ids), text projection.
//! - Heads: class logits for P patches x Q queries in one fused kernel; box MLP (exact
//!   GELU) plus the patch grid's box bias, then a sigmoid; OWLv2's objectness MLP.
pub use crate::blocks::Tower;
use crate::blocks::{Mixer, PatchEmbed, Tokens};
use crate::layers::{channel_scale, embed_tokens, eos_pool, layer_norm, linear, owl_class_logits, pool, reshape, token_embed, unary};
use crate::{image_batch, Family, GraphError, Preprocess, Result, Task, TextQueries, IMAGE_INPUT};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use wgvision_engine::{Activation, Graph, GraphBuilder, PoolKind, TensorId};

/// The grid's box bias, computed from the config when the model loads.
pub const BOX_BIAS: &str = "box_bias";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OwlConfig {
    pub name: String,
    /// OWLv2: objectness head, pad-to-square preprocessing.
    pub v2: bool,
    pub image_size: usize,
    pub patch_size: usize,
    pub vision: Tower,
    pub text: Tower,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub projection_dim: usize,
    pub preprocess: Preprocess,
}

impl OwlConfig {
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn patches(&self) -> usize {
        self.grid() * self.grid()
    }

    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(GraphError::Config(m));
        if self.patch_size == 0 || self.image_size < self.patch_size {
            return bad(format!("image_size {} must hold at least one {} patch", self.image_size, self.patch_size));
        }
        for (what, t) in [("vision", &self.vision), ("text", &self.text)] {
            if t.num_heads == 0 || !t.hidden_size.is_multiple_of(t.num_heads) {
                return bad(format!("{what}: hidden_size {} is not divisible by num_attention_heads {}", t.hidden_size, t.num_heads));
            }
        }
        if self.projection_dim != self.text.hidden_size {
            return bad(format!(
                "projection_dim {} differs from the text hidden_size {}; the class head compares them directly",
                self.projection_dim, self.text.hidden_size
            ));
        }
        Ok(())
    }

    /// A CLIP transformer; a text tower masks causally and by its padding `mask`.
    fn encoder(&self, g: &mut GraphBuilder, t: TensorId, tower: &Tower, prefix: &str, mask: Option<TensorId>) -> Result<TensorId> {
        tower.encoder(g, t, prefix, || Mixer::Global { causal: mask.is_some(), key_mask: mask })
    }

    /// ids [N, L] (and attention mask [N, L]) -> L2-normalised query embeddings [N, D]
    /// (normalised by the class head, which divides by the norm itself).
    fn text_tower(&self, g: &mut GraphBuilder, ids: TensorId, mask: TensorId) -> Result<TensorId> {
        let d = self.text.hidden_size;
        let table = g.weight("text.token_embedding", &[self.vocab_size, d])?;
        let pos = g.weight("text.position_embedding", &[self.max_position_embeddings, d])?;
        let t = embed_tokens(g, ids, "text.embed", table, pos)?; // (N, L, D)
        let t = self.encoder(g, t, &self.text, "text", Some(mask))?;
        let t = layer_norm(g, t, "text.final_norm", d, self.text.layer_norm_eps)?;
        let pooled = eos_pool(g, t, "text.eos_pool", ids)?; // (N, D)
        linear(g, pooled, "text.projection", (d, self.projection_dim), false, Activation::None, None)
    }

    fn mlp_head(&self, g: &mut GraphBuilder, x: TensorId, name: &str, out: usize) -> Result<TensorId> {
        let d = self.vision.hidden_size;
        let h = linear(g, x, &format!("{name}.dense0"), (d, d), true, Activation::Gelu, None)?;
        let h = linear(g, h, &format!("{name}.dense1"), (d, d), true, Activation::Gelu, None)?;
        linear(g, h, &format!("{name}.dense2"), (d, out), true, Activation::None, None)
    }

    /// pixels [B, 3, S, S] + query embeddings [B*Q, D] + ids [B*Q, L] -> outputs.
    fn image_tower_and_heads(&self, g: &mut GraphBuilder, batch: usize, pixels: TensorId, queries: TensorId, ids: TensorId) -> Result<()> {
        let (d, eps) = (self.vision.hidden_size, self.vision.layer_norm_eps);
        let np = self.patches();
        let embed = PatchEmbed {
            patch: self.patch_size,
            pad: false,
            dim: d,
            patchify: "vision.patchify",
            proj: "vision.patch_embedding",
            proj_bias: false,
            tokens: Some(Tokens {
                name: "vision.tokens",
                prefix: Some(("vision.class_embedding", 1)),
                pos: Some("vision.position_embedding"),
                pos_start: 0,
            }),
        };
        let t = embed.build(g, pixels)?; // (B, 1+P, D)
        let t = layer_norm(g, t, "vision.pre_norm", d, eps)?;
        let t = self.encoder(g, t, &self.vision, "vision", None)?;
        let t = layer_norm(g, t, "vision.post_norm", d, eps)?;
        let cls_out = pool(g, t, "vision.class_token", PoolKind::Token(0))?; // (B, D)
        let feats = channel_scale(g, t, "vision.patch_times_class", cls_out, Activation::None, 1)?; // (B, P, D)
        let feats = layer_norm(g, feats, "layer_norm", d, eps)?;
        // Class head.
        let img_class = linear(g, feats, "class_head.dense0", (d, self.text.hidden_size), true, Activation::None, None)?;
        // Per-patch class embeddings: image-guided queries take one of a query image's.
        g.output(img_class, "class_embeds")?;
        let shift_scale = linear(g, feats, "class_head.shift_scale", (d, 2), true, Activation::None, None)?; // (B, P, 2)
        let logits = owl_class_logits(g, img_class, "class_head.logits", shift_scale, queries, ids)?; // (B, P, Q)
        g.output(logits, "logits")?;
        // Box head: MLP, plus the grid's box bias, sigmoid.
        let boxes = self.mlp_head(g, feats, "box_head", 4)?;
        let bias = g.weight(BOX_BIAS, &[np, 4])?; // a constant: see `constant`
        let boxes = token_embed(g, boxes, "box_head.bias", None, Some(bias), 0)?; // (B, P, 4)
        let boxes = unary(g, boxes, "box_head.sigmoid", Activation::Sigmoid)?;
        g.output(boxes, "pred_boxes")?;
        if self.v2 {
            let obj = self.mlp_head(g, feats, "objectness_head", 1)?; // (B, P, 1)
            let obj = reshape(g, obj, "objectness_head.squeeze", vec![batch, np])?;
            g.output(obj, "objectness_logits")?;
        }
        Ok(())
    }

    /// The whole detector for `batch` images with `queries` text queries each, ids of
    /// length `seq` (inputs pixel_values, input_ids, attention_mask).
    pub fn build_for(&self, batch: usize, queries: usize, seq: usize) -> Result<Graph> {
        self.check()?;
        self.check_seq(queries, seq)?;
        let mut g = Graph::builder();
        let pixels = g.input("pixel_values", &[batch, 3, self.image_size, self.image_size])?;
        let ids = g.input("input_ids", &[batch * queries, seq])?;
        let mask = g.input("attention_mask", &[batch * queries, seq])?;
        let q = self.text_tower(&mut g, ids, mask)?;
        self.image_tower_and_heads(&mut g, batch, pixels, q, ids)?;
        Ok(g.finish())
    }

    /// The text tower alone: input_ids, attention_mask [N, L] -> `query_embeds` [N, D]
    /// (embedded once per query set, then reused across images).
    pub fn build_text(&self, n: usize, seq: usize) -> Result<Graph> {
        self.check()?;
        self.check_seq(n, seq)?;
        let mut g = Graph::builder();
        let ids = g.input("input_ids", &[n, seq])?;
        let mask = g.input("attention_mask", &[n, seq])?;
        let q = self.text_tower(&mut g, ids, mask)?;
        g.output(q, "query_embeds")?;
        Ok(g.finish())
    }

    /// Image tower and heads on precomputed `query_embeds` [B*Q, D] (input_ids [B*Q, L]
    /// only mark padding queries).
    pub fn build_image(&self, batch: usize, queries: usize, seq: usize) -> Result<Graph> {
        self.check()?;
        self.check_seq(queries, seq)?;
        let mut g = Graph::builder();
        let pixels = g.input("pixel_values", &[batch, 3, self.image_size, self.image_size])?;
        let ids = g.input("input_ids", &[batch * queries, seq])?;
        let q = g.input("query_embeds", &[batch * queries, self.projection_dim])?;
        self.image_tower_and_heads(&mut g, batch, pixels, q, ids)?;
        Ok(g.finish())
    }

    fn check_seq(&self, queries: usize, seq: usize) -> Result<()> {
        if seq == 0 || seq > self.max_position_embeddings || queries == 0 {
            return Err(GraphError::Config(format!(
                "input_ids must be [batch x queries, L] with 1 <= L <= {} and at least one query",
                self.max_position_embeddings
            )));
        }
        Ok(())
    }

    /// Graph weights that are constants of the config, not checkpoint tensors.
    pub fn constant(&self, name: &str) -> Option<Vec<f32>> {
        (name == BOX_BIAS).then(|| box_bias(self.grid()))
    }

    /// One image and one query of full length (weights enumeration, inspect, bench).
    pub fn build(&self, batch: usize) -> Result<Graph> {
        self.build_for(batch, 1, self.max_position_embeddings)
    }
}

/// transformers' box bias: logit of each patch's normalised corner coordinate and of the
/// patch size, [P, 4] in (x, y, w, h) order, patches row-major.
pub fn box_bias(grid: usize) -> Vec<f32> {
    let logit = |v: f64| (v + 1e-4).ln() - (-v + 1e-4).ln_1p();
    let size = logit(1.0 / grid as f64);
    let mut out = Vec::with_capacity(grid * grid * 4);
    for row in 0..grid {
        for col in 0..grid {
            let (x, y) = ((col + 1) as f64 / grid as f64, (row + 1) as f64 / grid as f64);
            out.extend([logit(x.clamp(0.0, 1.0)) as f32, logit(y.clamp(0.0, 1.0)) as f32, size as f32, size as f32]);
        }
    }
    out
}

impl Family for OwlConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    fn image_size(&self) -> [usize; 3] {
        [3, self.image_size, self.image_size]
    }

    fn build(&self, batch: usize) -> Result<Graph> {
        OwlConfig::build(self, batch)
    }

    fn task(&self) -> Task {
        Task::Detector(TextQueries { vocab_size: self.vocab_size, max_len: self.max_position_embeddings, embed_dim: self.projection_dim, attention_mask: true })
    }

    /// No pixel_values: the text tower. pixel_values [B, ..] + input_ids [B*Q, L]: the
    /// whole detector, or with query_embeds the image tower and heads.
    fn build_for_inputs(&self, shapes: &HashMap<String, Vec<usize>>) -> Result<Graph> {
        if !shapes.contains_key(IMAGE_INPUT) {
            return match shapes.get("input_ids").map(Vec::as_slice) {
                Some([n, l]) => self.build_text(*n, *l),
                _ => Err(GraphError::Config("the text tower needs input_ids [N, L] and attention_mask [N, L]".into())),
            };
        }
        let batch = image_batch(self, shapes)?;
        let ids = shapes.get("input_ids").ok_or_else(|| GraphError::Config("missing input input_ids [B*Q, L]".into()))?;
        match ids.as_slice() {
            [n, l] if *n > 0 && n % batch == 0 && shapes.contains_key("query_embeds") => self.build_image(batch, n / batch, *l),
            [n, l] if *n > 0 && n % batch == 0 => self.build_for(batch, n / batch, *l),
            _ => Err(GraphError::Config(format!("input_ids must be [B*Q, L] with B = {batch}, got {ids:?}"))),
        }
    }

    fn constant(&self, name: &str) -> Option<Vec<f32>> {
        OwlConfig::constant(self, name)
    }
}
