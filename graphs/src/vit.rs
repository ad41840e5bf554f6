//! Vision Transformer (Dosovitskiy et al. 2020) as timm's `VisionTransformer` builds it,
//! covering DeiT, CLIP image towers (pre-norm, no patch bias) and DINOv2 (LayerScale,
//! register tokens). LayerScale is folded into the preceding projection at conversion.
use crate::blocks::{Block, Ffn, Head, Mixer, PatchEmbed, Tokens};
use crate::layers::{layer_norm, linear, pool};
use crate::{Family, GraphError, Preprocess, Result};
use serde::{Deserialize, Serialize};
use wgvision_engine::{Activation, Graph, PoolKind};

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
    /// What the graph outputs: timm's head (`logits`), or one of transformers' heads.
    #[serde(default)]
    pub outputs: VitOutputs,
}

/// The heads of transformers' ViT-like classes, under their output names.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VitOutputs {
    /// `logits` from [norm], pool, [fc_norm], [pre-logits] and `head` (timm, and
    /// transformers' ViT/DeiTForImageClassification).
    #[default]
    Logits,
    /// ViTModel / DeiTModel: `last_hidden_state` (the final norm's output) and
    /// `pooler_output` (a tanh dense layer `pooler` on the class token).
    Pooler,
    /// Dinov2Model: `last_hidden_state` and `pooler_output` = its class token.
    ClassToken,
    /// DeiTForImageClassificationWithTeacher: `logits` = the mean of `head` on the class
    /// token and `head_dist` on the distillation token (the 1/2 folded into both).
    TeacherAverage,
    /// Dinov2ForImageClassification: `logits` = a classifier of [class token, mean of the
    /// patch tokens], split into `head` (class-token rows, with the bias) and `head_patch`.
    ClassAndPatchMean,
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
        if self.num_heads == 0 || !self.embed_dim.is_multiple_of(self.num_heads) {
            return bad(format!("embed_dim {} is not divisible by num_heads {}", self.embed_dim, self.num_heads));
        }
        if self.embed_dim / self.num_heads > 256 {
            return Err(GraphError::Unsupported(format!("head dim {} > 256", self.embed_dim / self.num_heads)));
        }
        let two_tokens = self.outputs == VitOutputs::TeacherAverage && self.num_prefix() < 2;
        if two_tokens || (self.outputs != VitOutputs::Logits && !self.class_token) {
            return bad(format!("{:?} outputs need a class token (and a distillation token)", self.outputs));
        }
        if matches!(self.outputs, VitOutputs::TeacherAverage | VitOutputs::ClassAndPatchMean) && self.num_classes == 0 {
            return bad("a classification head needs classes".into());
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
        let mut g = Graph::builder();
        let x = g.input("pixel_values", &[batch, self.in_chans, self.img_size[0], self.img_size[1]])?;
        let prefix = self.num_prefix();
        let embed = PatchEmbed {
            patch: self.patch_size,
            pad: false,
            dim: d,
            patchify: "patchify",
            proj: "patch_embed",
            proj_bias: self.patch_bias,
            tokens: Some(Tokens {
                name: "tokens",
                prefix: (prefix > 0).then_some(("prefix_tokens", prefix)),
                pos: self.pos_embed.then_some("pos_embed"),
                pos_start: if self.no_embed_class { prefix } else { 0 },
            }),
        };
        let mut t = embed.build(&mut g, x)?; // (B, T, D)
        if self.pre_norm {
            t = layer_norm(&mut g, t, "norm_pre", d, eps)?;
        }
        for i in 0..self.depth {
            let block = Block {
                dim: d,
                heads: self.num_heads,
                head_dim: d / self.num_heads,
                eps,
                qkv_bias: self.qkv_bias,
                proj: "proj",
                proj_bias: self.proj_bias,
                mixer: Mixer::Global { causal: false, key_mask: None },
                ffn: Ffn::Mlp { hidden: self.mlp_hidden, act: self.act },
            };
            t = block.build(&mut g, t, &format!("blocks.{i}"))?; // (B, T, D)
        }
        match self.outputs {
            VitOutputs::Logits => {}
            VitOutputs::Pooler | VitOutputs::ClassToken => {
                let h = layer_norm(&mut g, t, "norm", d, eps)?;
                g.output(h, "last_hidden_state")?;
                let cls = pool(&mut g, h, "pool", PoolKind::Token(0))?;
                let pooled = match self.outputs {
                    VitOutputs::Pooler => linear(&mut g, cls, "pooler", (d, d), true, Activation::Tanh, None)?,
                    _ => cls,
                };
                g.output(pooled, "pooler_output")?;
                return Ok(g.finish());
            }
            VitOutputs::TeacherAverage | VitOutputs::ClassAndPatchMean => {
                let h = layer_norm(&mut g, t, "norm", d, eps)?;
                let cls = pool(&mut g, h, "pool", PoolKind::Token(0))?;
                let cls_logits = linear(&mut g, cls, "head", (d, self.num_classes), true, Activation::None, None)?;
                let (other, name) = match self.outputs {
                    VitOutputs::TeacherAverage => (pool(&mut g, h, "pool_dist", PoolKind::Token(1))?, "head_dist"),
                    _ => (pool(&mut g, h, "pool_patch", PoolKind::MeanFrom(prefix))?, "head_patch"),
                };
                let bias = self.outputs == VitOutputs::TeacherAverage;
                let logits = linear(&mut g, other, name, (d, self.num_classes), bias, Activation::None, Some(cls_logits))?;
                g.output(logits, "logits")?;
                return Ok(g.finish());
            }
        }
        let head = Head {
            dim: d,
            eps,
            norm: self.norm.then_some("norm"),
            pool: "pool",
            kind: match self.global_pool {
                GlobalPool::Token => PoolKind::Token(0),
                GlobalPool::Avg => PoolKind::MeanFrom(prefix),
            },
            fc_norm: self.fc_norm.then_some("fc_norm"),
            pre_logits: None,
            num_classes: self.num_classes,
        };
        let logits = head.build(&mut g, t)?; // (B, C)
        g.output(logits, "logits")?;
        Ok(g.finish())
    }
}

impl Family for VitConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    fn image_size(&self) -> [usize; 3] {
        [self.in_chans, self.img_size[0], self.img_size[1]]
    }

    fn build(&self, batch: usize) -> Result<Graph> {
        VitConfig::build(self, batch)
    }
}
