//! OWL-ViT (Minderer et al. 2022) and OWLv2 open-vocabulary detection as transformers'
//! `OwlViTForObjectDetection` / `Owlv2ForObjectDetection` compute it.
//! - Image tower: CLIP ViT with pre- and post-LayerNorm; every output token goes through
//!   the post-LayerNorm, patch tokens are multiplied by the class token, then the
//!   detector's LayerNorm gives the per-patch features.
//! - Text tower: CLIP text transformer with a causal and a padding mask, final LayerNorm,
//!   the end-of-text token's row (argmax of the ids), text projection.
//! - Heads: class logits for P patches x Q queries in one fused kernel; box MLP (exact
//!   GELU) plus the patch grid's box bias, then a sigmoid; OWLv2's objectness MLP.
use wgvision_engine::ops;
use crate::layers::{layer_norm, linear};
use crate::{GraphError, Preprocess, Result};
use serde::{Deserialize, Serialize};
use wgvision_engine::{Activation, Graph, GraphBuilder, Op, PoolKind, TensorId};

/// The grid's box bias, computed from the config when the model loads.
pub const BOX_BIAS: &str = "box_bias";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tower {
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub layer_norm_eps: f32,
    pub act: Activation,
}

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
            if t.num_heads == 0 || t.hidden_size % t.num_heads != 0 {
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

    fn encoder(&self, g: &mut GraphBuilder, mut t: TensorId, tower: &Tower, prefix: &str, mask: Option<TensorId>) -> Result<TensorId> {
        let d = tower.hidden_size;
        let scale = 1.0 / ((d / tower.num_heads) as f32).sqrt();
        for i in 0..tower.num_layers {
            let p = format!("{prefix}.layers.{i}");
            let h = layer_norm(g, t, &format!("{p}.norm1"), d, tower.layer_norm_eps)?;
            let qkv = linear(g, h, &format!("{p}.attn.qkv"), (d, 3 * d), true, Activation::None, None)?;
            let op = Op::Attention(ops::Attention { heads: tower.num_heads, scale, causal: mask.is_some(), key_mask: mask.is_some() });
            let mut ins = vec![qkv];
            ins.extend(mask);
            let a = g.node(&format!("{p}.attn"), op, &ins)?;
            t = linear(g, a, &format!("{p}.attn.out"), (d, d), true, Activation::None, Some(t))?;
            let h = layer_norm(g, t, &format!("{p}.norm2"), d, tower.layer_norm_eps)?;
            let h = linear(g, h, &format!("{p}.mlp.fc1"), (d, tower.intermediate_size), true, tower.act, None)?;
            t = linear(g, h, &format!("{p}.mlp.fc2"), (tower.intermediate_size, d), true, Activation::None, Some(t))?;
        }
        Ok(t)
    }

    /// ids [N, L] (and attention mask [N, L]) -> L2-normalised query embeddings [N, D]
    /// (normalised by the class head, which divides by the norm itself).
    fn text_tower(&self, g: &mut GraphBuilder, ids: TensorId, mask: TensorId) -> Result<TensorId> {
        let d = self.text.hidden_size;
        let table = g.weight("text.token_embedding", &[self.vocab_size, d])?;
        let pos = g.weight("text.position_embedding", &[self.max_position_embeddings, d])?;
        let t = g.node("text.embed", Op::EmbedTokens(ops::EmbedTokens {}), &[ids, table, pos])?; // (N, L, D)
        let t = self.encoder(g, t, &self.text, "text", Some(mask))?;
        let t = layer_norm(g, t, "text.final_norm", d, self.text.layer_norm_eps)?;
        let pooled = g.node("text.eos_pool", Op::EosPool(ops::EosPool {}), &[t, ids])?; // (N, D)
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
        let (d, p) = (self.vision.hidden_size, self.patch_size);
        let np = self.patches();
        let patches = g.node("vision.patchify", Op::Patchify(ops::Patchify { patch: p, pad: false }), &[pixels])?;
        let emb = linear(g, patches, "vision.patch_embedding", (3 * p * p, d), false, Activation::None, None)?;
        let cls = g.weight("vision.class_embedding", &[1, d])?;
        let pos = g.weight("vision.position_embedding", &[np + 1, d])?;
        let t = g.node("vision.tokens", Op::TokenEmbed(ops::TokenEmbed { prefix: 1, pos: true, pos_start: 0 }), &[emb, cls, pos])?; // (B, 1+P, D)
        let t = layer_norm(g, t, "vision.pre_norm", d, self.vision.layer_norm_eps)?;
        let t = self.encoder(g, t, &self.vision, "vision", None)?;
        let t = layer_norm(g, t, "vision.post_norm", d, self.vision.layer_norm_eps)?;
        let cls_out = g.node("vision.class_token", Op::Pool(ops::Pool { kind: PoolKind::Token(0) }), &[t])?; // (B, D)
        let feats = g.node("vision.patch_times_class", Op::ChannelScale(ops::ChannelScale { act: Activation::None, skip: 1 }), &[t, cls_out])?; // (B, P, D)
        let feats = layer_norm(g, feats, "layer_norm", d, self.vision.layer_norm_eps)?;
        // Class head.
        let img_class = linear(g, feats, "class_head.dense0", (d, self.text.hidden_size), true, Activation::None, None)?;
        // Per-patch class embeddings: image-guided queries take one of a query image's.
        g.output(img_class, "class_embeds")?;
        let shift_scale = linear(g, feats, "class_head.shift_scale", (d, 2), true, Activation::None, None)?; // (B, P, 2)
        let logits = g.node("class_head.logits", Op::NormDotHead(ops::NormDotHead { image_eps: 1e-6, text_eps: 1e-6 }), &[img_class, shift_scale, queries, ids])?; // (B, P, Q)
        g.output(logits, "logits")?;
        // Box head: MLP, plus the grid's box bias, sigmoid.
        let boxes = self.mlp_head(g, feats, "box_head", 4)?;
        let bias = g.weight(BOX_BIAS, &[np, 4])?; // a constant: see `constant`
        let boxes = g.node("box_head.bias", Op::TokenEmbed(ops::TokenEmbed { prefix: 0, pos: true, pos_start: 0 }), &[boxes, bias])?;
        let boxes = g.node("box_head.sigmoid", Op::Unary(ops::Unary { act: Activation::Sigmoid }), &[boxes])?;
        g.output(boxes, "pred_boxes")?;
        if self.v2 {
            let obj = self.mlp_head(g, feats, "objectness_head", 1)?; // (B, P, 1)
            let obj = g.node("objectness_head.squeeze", Op::Reshape(ops::Reshape { shape: vec![batch, np] }), &[obj])?;
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
