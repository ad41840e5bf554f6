//! V-MoE (Riquelme et al. 2021) as google-research/vmoe runs it at inference, with Mobile
//! V-MoE's image routing and ViMoE's shared expert: a ViT whose MLP is, in the listed
//! blocks, a sparse mixture of experts. Routing runs on the GPU (router matmul, softmax,
//! top-k and slot assignment in one kernel), experts run as grouped matmuls over
//! an expert-major dispatch buffer, and the combine adds the gate-weighted outputs to the
//! residual.
use crate::blocks::{Block, Ffn, Head, Mixer, PatchEmbed, Tokens};
use crate::layers::{expert_linear, linear, moe_combine, moe_dispatch, moe_gate, moe_route, pool};
use crate::{Family, GraphError, Preprocess, Result};
use serde::{Deserialize, Serialize};
use wgvision_engine::{Activation, Graph, GraphBuilder, PoolKind, Routing, TensorId};

const LN_EPS: f32 = 1e-6;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Classifier {
    /// A class token, pooled by taking it.
    Token,
    /// No class token; mean over the patch tokens.
    Gap,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RoutingKind {
    Token,
    Image,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MoeConfig {
    /// Encoder blocks whose MLP is the MoE.
    pub layers: Vec<usize>,
    pub num_experts: usize,
    /// Tokens per routing group (token routing).
    pub group_size: usize,
    pub routing: RoutingKind,
    pub num_selected_experts: usize,
    pub capacity_factor: f64,
    pub batch_priority: bool,
    pub shared_expert: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VmoeConfig {
    pub name: String,
    /// [H, W]
    pub img_size: [usize; 2],
    pub patch_size: usize,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_layers: usize,
    pub mlp_dim: usize,
    /// 0: pooled (or pre-logits) features out.
    pub num_classes: usize,
    pub classifier: Classifier,
    pub representation_size: Option<usize>,
    pub moe: Option<MoeConfig>,
    pub preprocess: Preprocess,
}

impl VmoeConfig {
    pub fn tokens(&self) -> usize {
        (self.img_size[0] / self.patch_size) * (self.img_size[1] / self.patch_size) + (self.classifier == Classifier::Token) as usize
    }

    /// Smallest batch whose tokens fill whole routing groups.
    pub fn min_batch(&self) -> usize {
        match &self.moe {
            Some(m) if m.routing == RoutingKind::Token && m.group_size > 0 => {
                let (mut a, mut b) = (m.group_size, self.tokens());
                while b != 0 {
                    (a, b) = (b, a % b);
                }
                m.group_size / a
            }
            _ => 1,
        }
    }

    pub fn is_moe(&self, layer: usize) -> bool {
        self.moe.as_ref().is_some_and(|m| m.layers.contains(&layer))
    }

    /// The MoE layer indices, in order (the routing tables are outputs in this order).
    pub fn moe_layers(&self) -> Vec<usize> {
        (0..self.num_layers).filter(|&i| self.is_moe(i)).collect()
    }

    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(GraphError::Config(m));
        if self.patch_size == 0 || self.img_size.iter().any(|&s| s < self.patch_size) {
            return bad(format!("image_size {:?} must hold at least one {} patch", self.img_size, self.patch_size));
        }
        if self.num_heads == 0 || !self.hidden_size.is_multiple_of(self.num_heads) {
            return bad(format!("hidden_size {} is not divisible by num_heads {}", self.hidden_size, self.num_heads));
        }
        if let Some(m) = &self.moe {
            if let Some(l) = m.layers.iter().find(|&&l| l >= self.num_layers) {
                return bad(format!("moe layer {l} does not exist (num_layers {})", self.num_layers));
            }
            if m.num_experts > 64 {
                return bad(format!("num_experts {} exceeds the 64 the routing kernel supports", m.num_experts));
            }
            if m.num_experts == 0 || m.num_selected_experts == 0 || m.num_selected_experts > m.num_experts.min(8) {
                return bad(format!("num_selected_experts {} must be in 1..=min(num_experts {}, 8)", m.num_selected_experts, m.num_experts));
            }
            if m.routing == RoutingKind::Token && (m.group_size == 0 || m.capacity_factor <= 0.0) {
                return bad("token routing needs a positive group_size and capacity_factor".into());
            }
        }
        Ok(())
    }

    pub fn routing(&self) -> Option<Routing> {
        let m = self.moe.as_ref()?;
        Some(match m.routing {
            RoutingKind::Token => Routing::Token {
                group: m.group_size,
                capacity: capacity(m.group_size, m.num_selected_experts, m.capacity_factor, m.num_experts),
                batch_priority: m.batch_priority,
            },
            RoutingKind::Image => Routing::Image { tokens: self.tokens() },
        })
    }

    /// The graph for `batch` images. With `routing_tables`, each MoE layer's routing
    /// table [T, K, 3] is an extra output `routing.{layer}` (for routing statistics).
    pub fn build_with(&self, batch: usize, routing_tables: bool) -> Result<Graph> {
        self.check()?;
        let d = self.hidden_size;
        let mut g = Graph::builder();
        let x = g.input("pixel_values", &[batch, 3, self.img_size[0], self.img_size[1]])?;
        let embed = PatchEmbed {
            patch: self.patch_size,
            pad: false,
            dim: d,
            patchify: "patchify",
            proj: "embedding",
            proj_bias: true,
            tokens: Some(Tokens {
                name: "tokens",
                prefix: (self.classifier == Classifier::Token).then_some(("cls", 1)),
                pos: Some("pos_embed"),
                pos_start: 0,
            }),
        };
        let mut t = embed.build(&mut g, x)?; // (B, N, D)
        let routing = self.routing();
        let mut tables = Vec::new();
        for i in 0..self.num_layers {
            let b = format!("blocks.{i}");
            let mut experts;
            let ffn = match self.moe.as_ref().zip(routing.as_ref()).filter(|_| self.is_moe(i)) {
                Some((cfg, routing)) => {
                    experts = |g: &mut GraphBuilder, h: TensorId, residual: TensorId| -> Result<TensorId> {
                        let (out, table) = self.moe_block(g, h, residual, &b, cfg, routing)?;
                        tables.push((i, table));
                        Ok(out)
                    };
                    Ffn::Custom(&mut experts)
                }
                None => Ffn::Mlp { hidden: self.mlp_dim, act: Activation::GeluTanh },
            };
            let block = Block {
                dim: d,
                heads: self.num_heads,
                head_dim: d / self.num_heads,
                eps: LN_EPS,
                qkv_bias: true,
                proj: "out",
                proj_bias: true,
                mixer: Mixer::Global { causal: false, key_mask: None },
                ffn,
            };
            t = block.build(&mut g, t, &b)?; // (B, N, D)
        }
        let head = Head {
            dim: d,
            eps: LN_EPS,
            norm: Some("norm"),
            pool: "pool",
            kind: match self.classifier {
                Classifier::Token => PoolKind::Token(0),
                Classifier::Gap => PoolKind::MeanFrom(0),
            },
            fc_norm: None,
            pre_logits: self.representation_size.map(|r| ("pre_logits", r)),
            num_classes: self.num_classes,
        };
        let logits = head.build(&mut g, t)?; // (B, C)
        g.output(logits, "logits")?;
        if routing_tables {
            for (i, table) in tables {
                g.output(table, &format!("routing.{i}"))?;
            }
        }
        Ok(g.finish())
    }

    pub fn build(&self, batch: usize) -> Result<Graph> {
        self.build_with(batch, false)
    }

    /// residual + [shared MLP(h)] + sum of routed experts(h); returns (output, routing table).
    fn moe_block(&self, g: &mut GraphBuilder, h: TensorId, residual: TensorId, b: &str, cfg: &MoeConfig, routing: &Routing) -> Result<(TensorId, TensorId)> {
        let (d, m, e) = (self.hidden_size, self.mlp_dim, cfg.num_experts);
        let base = if cfg.shared_expert {
            let s = linear(g, h, &format!("{b}.shared.fc1"), (d, m), true, Activation::GeluTanh, None)?;
            linear(g, s, &format!("{b}.shared.fc2"), (m, d), true, Activation::None, Some(residual))?
        } else {
            residual
        };
        let router_in = match cfg.routing {
            RoutingKind::Token => h,
            RoutingKind::Image => pool(g, h, &format!("{b}.moe.image_mean"), PoolKind::MeanFrom(0))?, // (B, D)
        };
        let router = g.weight(&format!("{b}.moe.router.weight"), &[d, e])?;
        let gates = moe_gate(g, router_in, &format!("{b}.moe.gate"), router, e, cfg.num_selected_experts, routing.clone())?; // (T, K, 3)
        let table = match routing {
            Routing::Token { .. } => moe_route(g, gates, &format!("{b}.moe.route"), routing.clone())?, // (T, K, 3)
            Routing::Image { .. } => gates,
        };
        let disp = moe_dispatch(g, h, &format!("{b}.moe.dispatch"), table, e, routing.clone())?; // (E, R, D)
        let y = expert_linear(g, disp, &format!("{b}.moe.fc1"), (e, d, m), Activation::GeluTanh)?; // (E, R, M)
        let y = expert_linear(g, y, &format!("{b}.moe.fc2"), (e, m, d), Activation::None)?; // (E, R, D)
        let out = moe_combine(g, y, &format!("{b}.moe.combine"), table, base)?; // (B, N, D)
        Ok((out, table))
    }
}

impl Family for VmoeConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    fn image_size(&self) -> [usize; 3] {
        [3, self.img_size[0], self.img_size[1]]
    }

    fn build(&self, batch: usize) -> Result<Graph> {
        VmoeConfig::build(self, batch)
    }

    fn build_with_routing(&self, batch: usize) -> Result<Graph> {
        self.build_with(batch, true)
    }

    fn experts(&self) -> usize {
        self.moe.as_ref().map_or(0, |m| m.num_experts)
    }

    fn min_batch(&self) -> usize {
        VmoeConfig::min_batch(self)
    }
}

/// vmoe's expert capacity per group: ceil(S * K * cf / E), rounded up to a multiple of 4
/// (the engine's dispatch buffer wants whole vec4 rows).
pub fn capacity(group: usize, k: usize, capacity_factor: f64, experts: usize) -> usize {
    let c = (group as f64 * k as f64 * capacity_factor / experts as f64).ceil() as usize;
    c.div_ceil(4) * 4
}

#[cfg(test)]
mod tests {
    #[test]
    fn capacity_rounds_up_to_whole_vec4_rows() {
        assert_eq!(super::capacity(17, 2, 0.5, 8), 4); // ceil(2.125) = 3 -> 4
        assert_eq!(super::capacity(32, 1, 0.5, 4), 4);
        assert_eq!(super::capacity(8 * 577, 2, 1.05, 8), 1212); // ceil(1211.7) = 1212
    }
}
