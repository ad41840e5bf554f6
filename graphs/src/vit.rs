//! Vision Transformer (Dosovitskiy et al. 2020) as timm's `VisionTransformer` builds it,
//! covering DeiT, CLIP image towers (pre-norm, no patch bias) and DINOv2 (LayerScale,
//! register tokens). LayerScale is folded into the preceding projection at conversion.
use wgvision_engine::ops;
use crate::layers::{layer_norm, linear};
use crate::{GraphError, Preprocess, Result};
use serde::{Deserialize, Serialize};
use wgvision_engine::{Activation, Graph, Op, PoolKind, TensorId};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum GlobalPool {
    Token,
    Avg,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VitConfig {
    /// The peer model name (e.g. timm's `vit_base_patch16_224`), for reports.
    pub name: String,
    /// [H, W]
    pub img_size: [usize; 2],
    pub patch_size: usize,
    pub in_chans: usize,
    /// 0: the pooled features are the output.
    pub num_classes: usize,
    pub global_pool: GlobalPool,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_hidden: usize,
    pub qkv_bias: bool,
    pub proj_bias: bool,
    pub patch_bias: bool,
    pub class_token: bool,
    pub reg_tokens: usize,
    /// Position embedding only on patch tokens, not on class/register tokens.
    pub no_embed_class: bool,
    pub pos_embed: bool,
    pub pre_norm: bool,
    /// Final norm before pooling.
    pub norm: bool,
    /// Final norm after pooling.
    pub fc_norm: bool,
    pub norm_eps: f32,
    pub act: Activation,
    /// LayerScale (timm init_values): the checkpoint has ls1/ls2 gammas, which the
    /// converter folds into attn.proj and mlp.fc2. The graph itself has no scale op.
    #[serde(default)]
    pub layer_scale: bool,
    pub preprocess: Preprocess,
}

impl VitConfig {
    pub fn num_prefix(&self) -> usize {
        self.class_token as usize + self.reg_tokens
    }

    pub fn grid(&self) -> (usize, usize) {
        (self.img_size[0] / self.patch_size, self.img_size[1] / self.patch_size)
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(GraphError::Config(m));
        if self.patch_size == 0 || self.img_size[0] < self.patch_size || self.img_size[1] < self.patch_size {
            return bad(format!("img_size {:?} is smaller than one patch of {}", self.img_size, self.patch_size));
        }
        if self.num_heads == 0 || self.embed_dim % self.num_heads != 0 {
            return bad(format!("embed_dim {} is not divisible by num_heads {}", self.embed_dim, self.num_heads));
        }
        if self.embed_dim / self.num_heads > 256 {
            return Err(GraphError::Unsupported(format!("head dim {} > 256", self.embed_dim / self.num_heads)));
        }
        if self.global_pool == GlobalPool::Token && !self.class_token {
            return bad("global_pool 'token' needs class_token".into());
        }
        if self.depth == 0 || self.embed_dim == 0 || self.mlp_hidden == 0 {
            return bad("depth, embed_dim and mlp hidden size must be positive".into());
        }
        Ok(())
    }

    pub fn build(&self, batch: usize) -> Result<Graph> {
        self.check()?;
        let (d, eps) = (self.embed_dim, self.norm_eps);
        let (gh, gw) = self.grid();
        let tokens = self.num_prefix() + gh * gw;
        let mut g = Graph::builder();
        let ln = |g: &mut wgvision_engine::GraphBuilder, x: TensorId, name: &str| layer_norm(g, x, name, d, eps);
        let x = g.input("pixel_values", &[batch, self.in_chans, self.img_size[0], self.img_size[1]])?;
        let patches = g.node("patchify", Op::Patchify(ops::Patchify { patch: self.patch_size, pad: false }), &[x])?; // (B, Np, C*P*P)
        let cpp = self.in_chans * self.patch_size * self.patch_size;
        let emb = linear(&mut g, patches, "patch_embed", (cpp, d), self.patch_bias, Activation::None, None)?; // (B, Np, D)
        let mut ins = vec![emb];
        if self.num_prefix() > 0 {
            ins.push(g.weight("prefix_tokens", &[self.num_prefix(), d])?);
        }
        let pos_start = if self.no_embed_class { self.num_prefix() } else { 0 };
        if self.pos_embed {
            ins.push(g.weight("pos_embed", &[tokens - pos_start, d])?);
        }
        let op = Op::TokenEmbed(ops::TokenEmbed { prefix: self.num_prefix(), pos: self.pos_embed, pos_start });
        let mut t = g.node("tokens", op, &ins)?; // (B, T, D)
        if self.pre_norm {
            t = ln(&mut g, t, "norm_pre")?;
        }
        let scale = 1.0 / ((d / self.num_heads) as f32).sqrt();
        for i in 0..self.depth {
            let p = format!("blocks.{i}");
            let h = ln(&mut g, t, &format!("{p}.norm1"))?;
            let qkv = linear(&mut g, h, &format!("{p}.attn.qkv"), (d, 3 * d), self.qkv_bias, Activation::None, None)?; // (B, T, 3D)
            let a = g.node(&format!("{p}.attn"), Op::Attention(ops::Attention { heads: self.num_heads, scale, causal: false, key_mask: false }), &[qkv])?; // (B, T, D)
            t = linear(&mut g, a, &format!("{p}.attn.proj"), (d, d), self.proj_bias, Activation::None, Some(t))?;
            let h = ln(&mut g, t, &format!("{p}.norm2"))?;
            let h = linear(&mut g, h, &format!("{p}.mlp.fc1"), (d, self.mlp_hidden), true, self.act, None)?; // (B, T, M)
            t = linear(&mut g, h, &format!("{p}.mlp.fc2"), (self.mlp_hidden, d), true, Activation::None, Some(t))?;
        }
        if self.norm {
            t = ln(&mut g, t, "norm")?;
        }
        let kind = match self.global_pool {
            GlobalPool::Token => PoolKind::Token(0),
            GlobalPool::Avg => PoolKind::MeanFrom(self.num_prefix()),
        };
        let mut pooled = g.node("pool", Op::Pool(ops::Pool { kind }), &[t])?; // (B, D)
        if self.fc_norm {
            pooled = ln(&mut g, pooled, "fc_norm")?;
        }
        let out = if self.num_classes > 0 {
            linear(&mut g, pooled, "head", (d, self.num_classes), true, Activation::None, None)? // (B, C)
        } else {
            pooled
        };
        g.output(out, "logits")?;
        Ok(g.finish())
    }
}
