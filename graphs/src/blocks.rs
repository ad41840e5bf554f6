//! Blocks the model families share, built from layers.rs: the pre-norm transformer block
//! (global or window attention; an MLP or the family's own feed-forward, e.g. V-MoE's
//! experts), patch embedding with class / register / position tokens, and pool + head.
use crate::layers::{attention, layer_norm, linear, linear_weights, matmul, patchify, pool, token_embed, window_attention};
use crate::Result;
use wgvision_engine::{Activation, GraphBuilder, PoolKind, TensorId, WindowGeometry};

/// A transformer block's token mixer.
pub enum Mixer {
    /// Self-attention over all tokens; `key_mask` [B, N] (1 keep) and `causal` as CLIP's
    /// text tower masks.
    Global { causal: bool, key_mask: Option<TensorId> },
    /// Attention within the windows of a map (Swin's shifted windows, MaxViT's blocks and
    /// grid) with a relative-position bias `attn.rel_bias`.
    Window(WindowGeometry),
}

/// A transformer block's feed-forward on norm2's output.
pub enum Ffn<'f> {
    /// `mlp.fc1` (with `act`) then `mlp.fc2`, added to the residual.
    Mlp { hidden: usize, act: Activation },
    /// The family's own: (graph, normed tokens, residual) -> residual + output.
    Custom(&'f mut dyn FnMut(&mut GraphBuilder, TensorId, TensorId) -> Result<TensorId>),
}

/// A pre-norm transformer block, x + attn(norm1(x)) then x + ffn(norm2(x)), with weights
/// under `{p}.`: norm1, attn.qkv, attn.{proj}, norm2, mlp.fc1, mlp.fc2 (every family here
/// is pre-norm). LayerScale needs no option: the converters fold its gammas into
/// attn.{proj} and mlp.fc2, so the graph has no scale.
pub struct Block<'f> {
    pub dim: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub eps: f32,
    pub qkv_bias: bool,
    /// The output projection's name under `attn.`: timm's `proj`, or `out`.
    pub proj: &'static str,
    pub proj_bias: bool,
    pub mixer: Mixer,
    pub ffn: Ffn<'f>,
}

impl Block<'_> {
    /// t (B, N, D) -> (B, N, D).
    pub fn build(self, g: &mut GraphBuilder, t: TensorId, p: &str) -> Result<TensorId> {
        let (d, a) = (self.dim, self.heads * self.head_dim);
        let scale = 1.0 / (self.head_dim as f32).sqrt();
        let h = layer_norm(g, t, &format!("{p}.norm1"), d, self.eps)?;
        let qkv_w = linear_weights(g, &format!("{p}.attn.qkv"), (d, 3 * a), self.qkv_bias)?;
        let qkv = matmul(g, h, &format!("{p}.attn.qkv"), &qkv_w, Activation::None, None)?; // (B, N, 3A)
        let name = format!("{p}.attn");
        let att = match self.mixer {
            Mixer::Global { causal, key_mask } => attention(g, qkv, &name, self.heads, scale, causal, key_mask)?,
            Mixer::Window(layout) => {
                // The map is padded after norm1, so a padding position's key and value are
                // the qkv projection's bias.
                let padded = !layout.map[0].is_multiple_of(layout.window[0]) || !layout.map[1].is_multiple_of(layout.window[1]);
                let pad_bias = qkv_w.bias.filter(|_| padded);
                window_attention(g, qkv, &name, self.heads, scale, layout, pad_bias)?
            }
        }; // (B, N, A)
        let t = linear(g, att, &format!("{p}.attn.{}", self.proj), (a, d), self.proj_bias, Activation::None, Some(t))?; // (B, N, D)
        let h = layer_norm(g, t, &format!("{p}.norm2"), d, self.eps)?;
        match self.ffn {
            Ffn::Mlp { hidden, act } => {
                let h = linear(g, h, &format!("{p}.mlp.fc1"), (d, hidden), true, act, None)?; // (B, N, M)
                linear(g, h, &format!("{p}.mlp.fc2"), (hidden, d), true, Activation::None, Some(t))
            }
            Ffn::Custom(f) => f(g, h, t),
        }
    }
}

/// One tower of a CLIP-style transformer (CLIP, SigLIP and OWL-ViT's text and image
/// towers): its width, depth, heads, MLP width, LayerNorm eps and activation.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tower {
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub layer_norm_eps: f32,
    pub act: Activation,
}

impl Tower {
    /// `num_layers` pre-norm blocks under `{prefix}.layers.{i}` (qkv with bias, output
    /// projection `attn.out`), each mixing tokens as `mixer()` says.
    pub fn encoder(&self, g: &mut GraphBuilder, mut t: TensorId, prefix: &str, mixer: impl Fn() -> Mixer) -> Result<TensorId> {
        for i in 0..self.num_layers {
            let block = Block {
                dim: self.hidden_size,
                heads: self.num_heads,
                head_dim: self.hidden_size / self.num_heads,
                eps: self.layer_norm_eps,
                qkv_bias: true,
                proj: "out",
                proj_bias: true,
                mixer: mixer(),
                ffn: Ffn::Mlp { hidden: self.intermediate_size, act: self.act },
            };
            t = block.build(g, t, &format!("{prefix}.layers.{i}"))?; // (N, L, D)
        }
        Ok(t)
    }
}

/// Patch embedding: `patchify`, the projection `{proj}` [C*P*P, D], then the tokens.
pub struct PatchEmbed<'n> {
    pub patch: usize,
    /// Zero-pad the image to whole patches (transformers' Swin) instead of dropping the rest.
    pub pad: bool,
    pub dim: usize,
    /// The patchify node.
    pub patchify: &'n str,
    pub proj: &'n str,
    pub proj_bias: bool,
    /// None: the projected patches are the tokens.
    pub tokens: Option<Tokens<'n>>,
}

/// The node `name` that puts `prefix` tokens (weight name, count: class and register
/// tokens) in front of the patches and adds the position embedding `pos` from token
/// `pos_start` on.
pub struct Tokens<'n> {
    pub name: &'n str,
    pub prefix: Option<(&'n str, usize)>,
    pub pos: Option<&'n str>,
    pub pos_start: usize,
}

impl PatchEmbed<'_> {
    /// pixels (B, C, H, W) -> (B, T, D).
    pub fn build(&self, g: &mut GraphBuilder, pixels: TensorId) -> Result<TensorId> {
        let patches = patchify(g, pixels, self.patchify, self.patch, self.pad)?; // (B, Np, C*P*P)
        let (np, cpp) = (g.shape(patches)[1], g.shape(patches)[2]);
        let emb = linear(g, patches, self.proj, (cpp, self.dim), self.proj_bias, Activation::None, None)?; // (B, Np, D)
        let Some(tk) = &self.tokens else { return Ok(emb) };
        let prefix = match tk.prefix {
            Some((name, n)) => Some(g.weight(name, &[n, self.dim])?),
            None => None,
        };
        let tokens = tk.prefix.map_or(0, |(_, n)| n) + np;
        let pos = match tk.pos {
            Some(name) => Some(g.weight(name, &[tokens - tk.pos_start, self.dim])?),
            None => None,
        };
        token_embed(g, emb, tk.name, prefix, pos, tk.pos_start) // (B, T, D)
    }
}

/// Pooling and the classifier: [LayerNorm `norm` on the tokens], pool, [LayerNorm
/// `fc_norm` on the pooled features], [pre-logits Linear + tanh], and `head` when there
/// are classes (else the features are the output).
pub struct Head<'n> {
    pub dim: usize,
    pub eps: f32,
    pub norm: Option<&'n str>,
    /// The pool node.
    pub pool: &'n str,
    pub kind: PoolKind,
    pub fc_norm: Option<&'n str>,
    /// (name, width).
    pub pre_logits: Option<(&'n str, usize)>,
    pub num_classes: usize,
}

impl Head<'_> {
    /// tokens (B, T, D) -> (B, classes) or the features.
    pub fn build(&self, g: &mut GraphBuilder, mut t: TensorId) -> Result<TensorId> {
        if let Some(name) = self.norm {
            t = layer_norm(g, t, name, self.dim, self.eps)?;
        }
        let mut f = pool(g, t, self.pool, self.kind)?; // (B, D)
        if let Some(name) = self.fc_norm {
            f = layer_norm(g, f, name, self.dim, self.eps)?;
        }
        let mut width = self.dim;
        if let Some((name, w)) = self.pre_logits {
            f = linear(g, f, name, (self.dim, w), true, Activation::Tanh, None)?; // (B, W)
            width = w;
        }
        if self.num_classes > 0 {
            f = linear(g, f, "head", (width, self.num_classes), true, Activation::None, None)?; // (B, C)
        }
        Ok(f)
    }
}
