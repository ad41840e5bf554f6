//! MaxViT (Tu et al. 2022) as timm's `MaxxVit` builds its `maxvit_*` models: a two-conv
//! stem, then stages of MaxViT blocks, each an MBConv (1x1 expand, depthwise 3x3 with the
//! stage's stride, squeeze-excitation, 1x1 project, average-pool shortcut) followed by
//! block attention and grid attention over the same channels-last map.
//!
//! BatchNorm is folded into the convolutions at conversion, so every conv here is a
//! matmul (1x1), an im2col + matmul (stem) or the depthwise kernel, with bias and
//! activation fused. Both timm families are covered by the config: the `*_tf_*` models
//! (TF "same" padding, tanh GELU, NormMlp head) and the `*_rw_*` ones (symmetric
//! padding, SiLU convs, exact GELU, LayerNorm + linear head).
use crate::blocks::{Block, Ffn, Head, Mixer};
use crate::layers::{avg_pool, channel_scale, depthwise_conv, im2col, linear, pool};
use crate::{Family, GraphError, Preprocess, Result};
use serde::{Deserialize, Serialize};
use wgvision_engine::{Activation, ConvGeometry, Graph, GraphBuilder, PoolKind, TensorId, WindowGeometry};

/// How the stride-2 convolutions and pools pad.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// PyTorch: `kernel // 2` on every side (pools: none).
    Symmetric,
    /// TensorFlow "SAME": output ceil(n / stride), the odd pixel at the bottom/right.
    TfSame,
}

impl Padding {
    fn conv(self, map: [usize; 2], kernel: usize, stride: usize) -> ConvGeometry {
        match self {
            Padding::Symmetric => ConvGeometry::symmetric(map, kernel, stride),
            Padding::TfSame => ConvGeometry::tf_same(map, kernel, stride),
        }
    }

    fn pool(self, map: [usize; 2]) -> ConvGeometry {
        match self {
            Padding::Symmetric => ConvGeometry::valid(map, 2, 2),
            Padding::TfSame => ConvGeometry::tf_same(map, 2, 2),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaxVitConfig {
    pub name: String,
    /// [H, W]
    pub img_size: [usize; 2],
    pub in_chans: usize,
    /// 0: the pooled (or pre-logits) features are the output.
    pub num_classes: usize,
    /// Output channels of each stage.
    pub embed_dim: Vec<usize>,
    pub depths: Vec<usize>,
    /// Output channels of the stem's two convs.
    pub stem_width: [usize; 2],
    /// Whether the stem's second conv has a bias (the first always has one after folding).
    pub stem_bias: bool,
    pub padding: Padding,
    /// Activation of the MBConv / stem BatchNorms.
    pub conv_act: Activation,
    /// MBConv expansion: mid = make_divisible(ratio * (out if expand_output else in)).
    pub expand_ratio: f32,
    pub expand_output: bool,
    /// Squeeze-excitation width: int(se_ratio * (out if expand_output else mid)).
    pub se_ratio: f32,
    pub se_act: Activation,
    /// Bias on the MBConv's projection and shortcut 1x1 convs.
    pub conv_output_bias: bool,
    pub dim_head: usize,
    /// Block-attention window and grid-attention grid, [h, w].
    pub window: [usize; 2],
    pub grid: [usize; 2],
    pub attn_bias: bool,
    pub mlp_ratio: f32,
    pub attn_act: Activation,
    /// eps of the attention blocks' and the head's LayerNorms.
    pub norm_eps: f32,
    /// NormMlp head (pool, LayerNorm, Linear + tanh, Linear) when set; else LayerNorm on
    /// the map, pool, Linear.
    pub head_hidden_size: Option<usize>,
    pub preprocess: Preprocess,
    /// How the source checkpoint stores what the converter folds away.
    pub checkpoint: MaxVitCheckpoint,
}

/// Checkpoint layout details the converter needs (the graph does not).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaxVitCheckpoint {
    /// qkv output channels grouped per head ([q_h, k_h, v_h] per head) instead of [q, k, v].
    pub head_first: bool,
    pub rel_pos: RelPos,
    /// eps of the BatchNorms folded into the convs.
    pub bn_eps: f32,
    /// LayerScale gammas (ls1/ls2) present, folded into the projections.
    pub layer_scale: bool,
    /// Hidden width of the `RelPosMlp` (rmlp models).
    pub rel_pos_dim: usize,
}

/// The relative-position bias flavour of a timm MaxViT.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RelPos {
    /// `RelPosBias`: Swin-style [(2h-1)(2w-1), heads] table indexed by query - key.
    Bias,
    /// `RelPosBiasTf`: [heads, 2h-1, 2w-1] indexed by key - query.
    BiasTf,
    /// `RelPosMlp` ('cr' log coordinates): a 2-layer MLP evaluated once at conversion.
    Mlp,
}

/// timm's `make_divisible` (divisor 8, at most 10% rounded away).
pub fn make_divisible(v: f64) -> usize {
    let d = 8.0;
    let mut n = (((v + d / 2.0) as usize) / 8 * 8).max(8);
    if (n as f64) < 0.9 * v {
        n += 8;
    }
    n
}

/// One MaxViT block's shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockShape {
    pub in_chs: usize,
    pub out_chs: usize,
    pub stride: usize,
    pub mid: usize,
    pub se: usize,
    /// Map before and after the block's (strided) depthwise conv.
    pub map_in: [usize; 2],
    pub map: [usize; 2],
    pub heads: usize,
}

impl MaxVitConfig {
    pub fn num_features(&self) -> usize {
        *self.embed_dim.last().unwrap_or(&0)
    }

    /// Output width: classes, else the pre-logits or pooled features.
    pub fn output_dim(&self) -> usize {
        match (self.num_classes, self.head_hidden_size) {
            (0, Some(h)) => h,
            (0, None) => self.num_features(),
            (k, _) => k,
        }
    }

    fn stem_maps(&self) -> (ConvGeometry, ConvGeometry) {
        let g1 = self.padding.conv(self.img_size, 3, 2);
        let g2 = self.padding.conv(g1.out, 3, 1);
        (g1, g2)
    }

    /// Every block's shapes, with timm's checks: window and grid must tile each stage's map.
    pub fn blocks(&self) -> Result<Vec<Vec<BlockShape>>> {
        let bad = |m: String| Err(GraphError::Config(m));
        let n = self.embed_dim.len();
        if n == 0 || self.depths.len() != n {
            return bad(format!("embed_dim ({n}) and depths ({}) need one entry per stage", self.depths.len()));
        }
        if self.img_size.iter().any(|&s| s < 2) || self.dim_head == 0 || self.window.contains(&0) || self.grid.contains(&0) {
            return bad(format!(
                "img_size {:?}, dim_head {}, window {:?} and grid {:?} must be positive (img_size >= 2; with img_size below 32 set the window and grid explicitly)",
                self.img_size, self.dim_head, self.window, self.grid
            ));
        }
        let (_, g2) = self.stem_maps();
        let mut map = g2.out;
        let mut in_chs = self.stem_width[1];
        let mut stages = Vec::new();
        for (i, (&out_chs, &depth)) in self.embed_dim.iter().zip(&self.depths).enumerate() {
            if depth == 0 {
                return bad(format!("stage {i} has depth 0"));
            }
            let mut blocks = Vec::new();
            for j in 0..depth {
                let stride = if j == 0 { 2 } else { 1 };
                let map_in = map;
                map = self.padding.conv(map_in, 3, stride).out;
                if stride == 2 && self.padding.pool(map_in).out != map {
                    return Err(GraphError::Unsupported(format!(
                        "stage {i}: the {map_in:?} map has an odd side; its 2x2 shortcut pool gives {:?} but the strided conv {map:?} (timm fails on this size too)",
                        self.padding.pool(map_in).out
                    )));
                }
                for (what, size) in [("window", self.window), ("grid", self.grid)] {
                    if map[0] % size[0] != 0 || map[1] % size[1] != 0 {
                        return Err(GraphError::Unsupported(format!(
                            "stage {i}: the {map:?} map is not a multiple of the {what} {size:?}; timm's MaxViT requires it (choose img_size accordingly)"
                        )));
                    }
                }
                if out_chs % self.dim_head != 0 {
                    return bad(format!("stage {i}: dim {out_chs} is not divisible by dim_head {}", self.dim_head));
                }
                let mid = make_divisible((if self.expand_output { out_chs } else { in_chs }) as f64 * self.expand_ratio as f64);
                let se = (self.se_ratio as f64 * (if self.expand_output { out_chs } else { mid }) as f64) as usize;
                if se == 0 {
                    return bad(format!("stage {i}: squeeze-excitation width rounds to 0"));
                }
                blocks.push(BlockShape { in_chs, out_chs, stride, mid, se, map_in, map, heads: out_chs / self.dim_head });
                in_chs = out_chs;
            }
            stages.push(blocks);
        }
        Ok(stages)
    }

    pub fn build(&self, batch: usize) -> Result<Graph> {
        let stages = self.blocks()?;
        let mut g = Graph::builder();
        let x = g.input("pixel_values", &[batch, self.in_chans, self.img_size[0], self.img_size[1]])?;
        let (g1, g2) = self.stem_maps();
        let [s0, s1] = self.stem_width;
        let k1 = 9 * self.in_chans;
        let cols = im2col(&mut g, x, "stem.conv1.im2col", g1, true)?; // (B, H/2*W/2, 9*Cin)
        let t = linear(&mut g, cols, "stem.conv1", (k1, s0), true, self.conv_act, None)?;
        let cols = im2col(&mut g, t, "stem.conv2.im2col", g2, false)?; // (B, H/2*W/2, 9*S0)
        let mut t = linear(&mut g, cols, "stem.conv2", (9 * s0, s1), self.stem_bias, Activation::None, None)?;
        for (i, blocks) in stages.iter().enumerate() {
            for (j, b) in blocks.iter().enumerate() {
                let p = format!("stages.{i}.blocks.{j}");
                t = self.mbconv(&mut g, t, &format!("{p}.conv"), b)?; // (B, H*W, C)
                t = self.partition_attention(&mut g, t, &format!("{p}.attn_block"), b, false)?;
                t = self.partition_attention(&mut g, t, &format!("{p}.attn_grid"), b, true)?;
            }
        }
        let d = self.num_features();
        // NormMlp head: pool, LayerNorm, Linear + tanh; else LayerNorm on the map, pool.
        let norm_mlp = self.head_hidden_size.is_some();
        let head = Head {
            dim: d,
            eps: self.norm_eps,
            norm: (!norm_mlp).then_some("norm"),
            pool: "head.pool",
            kind: PoolKind::MeanFrom(0),
            fc_norm: norm_mlp.then_some("head.norm"),
            pre_logits: self.head_hidden_size.map(|h| ("head.pre_logits", h)),
            num_classes: self.num_classes,
        };
        let logits = head.build(&mut g, t)?; // (B, classes)
        g.output(logits, "logits")?;
        Ok(g.finish())
    }

    /// MBConv: (avg-pool + 1x1 expand) shortcut; 1x1 conv (pre-norm and norm1 folded) +
    /// act; depthwise 3x3 (norm2 folded) + act; squeeze-excitation; 1x1 projection.
    fn mbconv(&self, g: &mut GraphBuilder, x: TensorId, p: &str, b: &BlockShape) -> Result<TensorId> {
        let shortcut = if b.stride == 2 {
            let pooled = avg_pool(g, x, &format!("{p}.shortcut.pool"), self.padding.pool(b.map_in))?;
            if b.in_chs != b.out_chs {
                linear(g, pooled, &format!("{p}.shortcut.expand"), (b.in_chs, b.out_chs), self.conv_output_bias, Activation::None, None)?
            } else {
                pooled
            }
        } else if b.in_chs == b.out_chs {
            x
        } else {
            return Err(GraphError::Config(format!("{p}: stride-1 MBConv from {} to {} channels has no shortcut", b.in_chs, b.out_chs)));
        };
        let h = linear(g, x, &format!("{p}.conv1"), (b.in_chs, b.mid), true, self.conv_act, None)?; // (B, H*W, mid)
        let geometry = self.padding.conv(b.map_in, 3, b.stride);
        let h = depthwise_conv(g, h, &format!("{p}.dw"), b.mid, geometry, self.conv_act)?; // (B, Ho*Wo, mid)
        let s = pool(g, h, &format!("{p}.se.pool"), PoolKind::MeanFrom(0))?; // (B, mid)
        let s = linear(g, s, &format!("{p}.se.fc1"), (b.mid, b.se), true, self.se_act, None)?;
        let s = linear(g, s, &format!("{p}.se.fc2"), (b.se, b.mid), true, Activation::None, None)?;
        let h = channel_scale(g, h, &format!("{p}.se"), s, Activation::Sigmoid, 0)?;
        linear(g, h, &format!("{p}.conv3"), (b.mid, b.out_chs), self.conv_output_bias, Activation::None, Some(shortcut))
    }

    /// Pre-norm attention over blocks (or the dilated grid) of the map, then the MLP.
    fn partition_attention(&self, g: &mut GraphBuilder, t: TensorId, p: &str, b: &BlockShape, grid: bool) -> Result<TensorId> {
        let d = b.out_chs;
        let window = if grid { self.grid } else { self.window };
        let block = Block {
            dim: d,
            heads: b.heads,
            head_dim: self.dim_head,
            eps: self.norm_eps,
            qkv_bias: self.attn_bias,
            proj: "proj",
            proj_bias: self.attn_bias,
            mixer: Mixer::Window(WindowGeometry { map: b.map, window, shift: [0, 0], pad_first: false, grid }),
            ffn: Ffn::Mlp { hidden: (d as f32 * self.mlp_ratio) as usize, act: self.attn_act },
        };
        block.build(g, t, p) // (B, H*W, C)
    }
}

impl Family for MaxVitConfig {
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
        MaxVitConfig::build(self, batch)
    }
}
