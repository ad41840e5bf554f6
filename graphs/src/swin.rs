//! Swin Transformer (Liu et al. 2021) as timm's `SwinTransformer` and transformers'
//! `SwinModel` / `SwinForImageClassification` build it. The two differ on odd sizes,
//! and the config records which one the checkpoint came from:
//! - timm: patch grid = floor(H / P) (a stride-P conv); windows shrink per axis to the
//!   stage's resolution; a shifted block rolls the map, then pads it to whole windows.
//! - transformers: the image is zero-padded to whole patches; the window shrinks to the
//!   smaller side (square) once that side fits in it; blocks pad, then roll.
use crate::blocks::{Block, Ffn, Head, Mixer, PatchEmbed};
use crate::layers::{layer_norm, linear, patch_merge};
use crate::{Family, GraphError, Preprocess, Result};
use serde::{Deserialize, Serialize};
use wgvision_engine::{Activation, Graph, PoolKind, WindowGeometry};

const TORCH_LN_EPS: f32 = 1e-5;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Timm,
    Hf,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SwinConfig {
    pub name: String,
    pub origin: Origin,
    /// [H, W]
    pub img_size: [usize; 2],
    pub patch_size: usize,
    pub in_chans: usize,
    /// 0: the pooled features are the output.
    pub num_classes: usize,
    /// Channels of stage 0; stage i has embed_dim * 2^i.
    pub embed_dim: usize,
    pub depths: Vec<usize>,
    pub num_heads: Vec<usize>,
    /// Per-head channels when not dim / heads (timm `head_dim`).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Target window per stage, [h, w].
    pub window_size: Vec<[usize; 2]>,
    /// timm `always_partition`: keep the target window and shift even on small maps.
    #[serde(default)]
    pub always_partition: bool,
    pub mlp_ratio: f32,
    pub qkv_bias: bool,
    /// eps of the block and final LayerNorms (the patch-embedding and patch-merging
    /// norms are torch's default 1e-5 in both timm and transformers).
    pub norm_eps: f32,
    pub act: Activation,
    pub preprocess: Preprocess,
}

/// One stage's geometry: the map its blocks run on and their two window layouts.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub dim: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub map: [usize; 2],
    pub regular: WindowGeometry,
    pub shifted: WindowGeometry,
}

impl SwinConfig {
    pub fn stage_dim(&self, i: usize) -> usize {
        self.embed_dim << i
    }

    pub fn num_features(&self) -> usize {
        self.stage_dim(self.depths.len().saturating_sub(1))
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(GraphError::Config(m));
        let n = self.depths.len();
        if n == 0 || self.num_heads.len() != n || self.window_size.len() != n {
            return bad(format!(
                "depths ({}), num_heads ({}) and window_size ({}) need one entry per stage",
                n,
                self.num_heads.len(),
                self.window_size.len()
            ));
        }
        if self.patch_size == 0 || self.img_size.contains(&0) || self.embed_dim == 0 {
            return bad("patch_size, img_size and embed_dim must be positive".into());
        }
        if self.origin == Origin::Timm && (self.img_size[0] < self.patch_size || self.img_size[1] < self.patch_size) {
            return bad(format!("img_size {:?} is smaller than one patch of {}", self.img_size, self.patch_size));
        }
        for (i, (&h, w)) in self.num_heads.iter().zip(&self.window_size).enumerate() {
            if h == 0 || w.contains(&0) {
                return bad(format!("stage {i}: num_heads and window_size must be positive"));
            }
            if self.head_dim.is_none() && !self.stage_dim(i).is_multiple_of(h) {
                return bad(format!("stage {i}: dim {} is not divisible by num_heads {h}", self.stage_dim(i)));
            }
        }
        Ok(())
    }

    /// Window and shift of every stage, as the peer library computes them.
    pub fn stages(&self) -> Result<Vec<Stage>> {
        self.check()?;
        let p = self.patch_size;
        let [ih, iw] = self.img_size;
        let mut map = match self.origin {
            Origin::Timm => [ih / p, iw / p],
            Origin::Hf => [ih.div_ceil(p), iw.div_ceil(p)],
        };
        // timm sizes each block from the resolution it declares (floor halving).
        let mut declared = map;
        let mut out = Vec::new();
        for i in 0..self.depths.len() {
            if i > 0 {
                map = [map[0].div_ceil(2), map[1].div_ceil(2)];
                declared = [declared[0] / 2, declared[1] / 2];
            }
            let target = self.window_size[i];
            let (window, shift) = match self.origin {
                Origin::Timm if self.always_partition => (target, [target[0] / 2, target[1] / 2]),
                Origin::Timm => {
                    let win = [declared[0].min(target[0]).max(1), declared[1].min(target[1]).max(1)];
                    let sh = [0, 1].map(|a| if declared[a] <= win[a] { 0 } else { target[a] / 2 });
                    (win, sh)
                }
                Origin::Hf => {
                    let ws = target[0];
                    let m = map[0].min(map[1]);
                    if m < ws {
                        // transformers shrinks the window but keeps the full-size bias table,
                        // so its forward fails on such a map; say so instead of guessing.
                        return Err(GraphError::Unsupported(format!(
                            "stage {i}: the {map:?} map is smaller than window_size {ws}; transformers' Swin cannot run this size either"
                        )));
                    }
                    if m == ws {
                        ([ws, ws], [0, 0])
                    } else {
                        ([ws, ws], [ws / 2, ws / 2])
                    }
                }
            };
            if self.origin == Origin::Timm && shift != [0, 0] && declared != map {
                let pads = |a: usize| map[a].div_ceil(window[a]) != declared[a].div_ceil(window[a]);
                if pads(0) || pads(1) {
                    return Err(GraphError::Unsupported(format!(
                        "stage {i}: timm declares a {declared:?} map but computes {map:?}; its shift mask does not fit (timm fails on this size too)"
                    )));
                }
            }
            let dim = self.stage_dim(i);
            let heads = self.num_heads[i];
            let head_dim = self.head_dim.unwrap_or(dim / heads);
            let pad_first = self.origin == Origin::Hf;
            out.push(Stage {
                dim,
                heads,
                head_dim,
                map,
                regular: WindowGeometry { map, window, shift: [0, 0], pad_first, grid: false },
                shifted: WindowGeometry { map, window, shift, pad_first, grid: false },
            });
        }
        Ok(out)
    }

    pub fn build(&self, batch: usize) -> Result<Graph> {
        let stages = self.stages()?;
        let eps = self.norm_eps;
        let mut g = Graph::builder();
        let x = g.input("pixel_values", &[batch, self.in_chans, self.img_size[0], self.img_size[1]])?;
        let d0 = self.embed_dim;
        let embed = PatchEmbed {
            patch: self.patch_size,
            pad: self.origin == Origin::Hf,
            dim: d0,
            patchify: "patchify",
            proj: "patch_embed",
            proj_bias: true,
            tokens: None,
        };
        let mut t = embed.build(&mut g, x)?; // (B, Hp*Wp, D)
        t = layer_norm(&mut g, t, "patch_embed.norm", d0, TORCH_LN_EPS)?;
        for (i, st) in stages.iter().enumerate() {
            if i > 0 {
                let prev = &stages[i - 1];
                let p = format!("layers.{i}.downsample");
                let m = patch_merge(&mut g, t, &format!("{p}.merge"), prev.map)?; // (B, H/2*W/2, 4C)
                let m = layer_norm(&mut g, m, &format!("{p}.norm"), 4 * prev.dim, TORCH_LN_EPS)?;
                t = linear(&mut g, m, &format!("{p}.reduction"), (4 * prev.dim, st.dim), false, Activation::None, None)?; // (B, H/2*W/2, 2C)
            }
            for j in 0..self.depths[i] {
                // Blocks alternate regular and shifted windows.
                let layout = if j % 2 == 1 { &st.shifted } else { &st.regular };
                let block = Block {
                    dim: st.dim,
                    heads: st.heads,
                    head_dim: st.head_dim,
                    eps,
                    qkv_bias: self.qkv_bias,
                    proj: "proj",
                    proj_bias: true,
                    mixer: Mixer::Window(layout.clone()),
                    ffn: Ffn::Mlp { hidden: (st.dim as f32 * self.mlp_ratio) as usize, act: self.act },
                };
                t = block.build(&mut g, t, &format!("layers.{i}.blocks.{j}"))?; // (B, H*W, C)
            }
        }
        let head = Head {
            dim: self.num_features(),
            eps,
            norm: Some("norm"),
            pool: "pool",
            kind: PoolKind::MeanFrom(0),
            fc_norm: None,
            pre_logits: None,
            num_classes: self.num_classes,
        };
        let logits = head.build(&mut g, t)?; // (B, classes)
        g.output(logits, "logits")?;
        Ok(g.finish())
    }
}

impl Family for SwinConfig {
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
        SwinConfig::build(self, batch)
    }
}
