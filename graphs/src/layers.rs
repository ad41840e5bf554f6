//! One helper per engine op, the only place in graphs/ that writes `Op::`: each adds a
//! node (and the weights it owns, named `{name}.weight` / `{name}.bias` / ...) to a graph.
//! Arguments run (graph, main input, node name, other inputs, op parameters).
use wgvision_engine::ops;
use crate::Result;
use wgvision_engine::{Activation, ConvGeometry, GraphBuilder, Op, PoolKind, Routing, TensorId, WindowGeometry};

// ---- Dense layers ----------------------------------------------------------------

/// A linear layer's weights: `{name}.weight` [K, N] and, with a bias, `{name}.bias` [N].
pub struct LinearWeights {
    pub weight: TensorId,
    pub bias: Option<TensorId>,
}

pub fn linear_weights(g: &mut GraphBuilder, name: &str, (k, n): (usize, usize), bias: bool) -> Result<LinearWeights> {
    let weight = g.weight(&format!("{name}.weight"), &[k, n])?;
    let bias = if bias { Some(g.weight(&format!("{name}.bias"), &[n])?) } else { None };
    Ok(LinearWeights { weight, bias })
}

/// act(x @ weight + bias) + residual as one fused matmul node.
pub fn matmul(g: &mut GraphBuilder, x: TensorId, name: &str, w: &LinearWeights, act: Activation, residual: Option<TensorId>) -> Result<TensorId> {
    let mut ins = vec![x, w.weight];
    ins.extend(w.bias);
    ins.extend(residual);
    Ok(g.node(name, Op::MatMul(ops::MatMul { act, bias: w.bias.is_some(), residual: residual.is_some() }), &ins)?)
}

/// A linear layer (its weights, then the fused matmul), e.g. `linear(g, x, "head", (d, classes), true, Activation::None, None)`.
pub fn linear(
    g: &mut GraphBuilder,
    x: TensorId,
    name: &str,
    kn: (usize, usize),
    bias: bool,
    act: Activation,
    residual: Option<TensorId>,
) -> Result<TensorId> {
    let w = linear_weights(g, name, kn, bias)?;
    matmul(g, x, name, &w, act, residual)
}

pub fn layer_norm(g: &mut GraphBuilder, x: TensorId, name: &str, d: usize, eps: f32) -> Result<TensorId> {
    let w = g.weight(&format!("{name}.weight"), &[d])?;
    let b = g.weight(&format!("{name}.bias"), &[d])?;
    Ok(g.node(name, Op::LayerNorm(ops::LayerNorm { eps }), &[x, w, b])?)
}

pub fn unary(g: &mut GraphBuilder, x: TensorId, name: &str, act: Activation) -> Result<TensorId> {
    Ok(g.node(name, Op::Unary(ops::Unary { act }), &[x])?)
}

pub fn reshape(g: &mut GraphBuilder, x: TensorId, name: &str, shape: Vec<usize>) -> Result<TensorId> {
    Ok(g.node(name, Op::Reshape(ops::Reshape { shape }), &[x])?)
}

/// x[:, skip:] * act(s): squeeze-excitation's gate, OWL's patch tokens times the class token.
pub fn channel_scale(g: &mut GraphBuilder, x: TensorId, name: &str, s: TensorId, act: Activation, skip: usize) -> Result<TensorId> {
    Ok(g.node(name, Op::ChannelScale(ops::ChannelScale { act, skip }), &[x, s])?)
}

// ---- Attention -------------------------------------------------------------------

/// Multi-head self-attention on fused qkv [B, N, 3A] -> [B, N, A]; `key_mask` [B, N]
/// (1 keep, 0 padding) and `causal` as a text tower masks.
pub fn attention(
    g: &mut GraphBuilder,
    qkv: TensorId,
    name: &str,
    heads: usize,
    scale: f32,
    causal: bool,
    key_mask: Option<TensorId>,
) -> Result<TensorId> {
    let mut ins = vec![qkv];
    ins.extend(key_mask);
    Ok(g.node(name, Op::Attention(ops::Attention { heads, scale, causal, key_mask: key_mask.is_some() }), &ins)?)
}

/// Attention within the windows of `layout` on qkv [B, H*W, 3A] -> [B, H*W, A], with the
/// relative-position bias `{name}.rel_bias` [heads, N, N]; `pad_bias` (the qkv bias) is
/// the key/value of padding positions.
pub fn window_attention(
    g: &mut GraphBuilder,
    qkv: TensorId,
    name: &str,
    heads: usize,
    scale: f32,
    layout: WindowGeometry,
    pad_bias: Option<TensorId>,
) -> Result<TensorId> {
    let n = layout.tokens();
    let rel = g.weight(&format!("{name}.rel_bias"), &[heads, n, n])?;
    let mut ins = vec![qkv, rel];
    ins.extend(pad_bias);
    Ok(g.node(name, Op::WindowAttention(ops::WindowAttention { heads, layout, pad_bias: pad_bias.is_some(), scale }), &ins)?)
}

// ---- Tokens and pooling ----------------------------------------------------------

/// Image [B, C, H, W] -> patches [B, Np, C*P*P]; with `pad` the grid rounds up.
pub fn patchify(g: &mut GraphBuilder, x: TensorId, name: &str, patch: usize, pad: bool) -> Result<TensorId> {
    Ok(g.node(name, Op::Patchify(ops::Patchify { patch, pad }), &[x])?)
}

/// [prefix tokens; x] + position embeddings: `prefix` [P, D] in front, `pos` added from
/// token `pos_start` on.
pub fn token_embed(g: &mut GraphBuilder, x: TensorId, name: &str, prefix: Option<TensorId>, pos: Option<TensorId>, pos_start: usize) -> Result<TensorId> {
    let count = prefix.map_or(0, |p| g.shape(p)[0]);
    let mut ins = vec![x];
    ins.extend(prefix);
    ins.extend(pos);
    Ok(g.node(name, Op::TokenEmbed(ops::TokenEmbed { prefix: count, pos: pos.is_some(), pos_start }), &ins)?)
}

/// Token ids [N, L] -> table rows plus positions [N, L, D].
pub fn embed_tokens(g: &mut GraphBuilder, ids: TensorId, name: &str, table: TensorId, pos: TensorId) -> Result<TensorId> {
    Ok(g.node(name, Op::EmbedTokens(ops::EmbedTokens {}), &[ids, table, pos])?)
}

/// [N, L, D] -> [N, D] at each sequence's end-of-text token (its largest id).
pub fn eos_pool(g: &mut GraphBuilder, x: TensorId, name: &str, ids: TensorId) -> Result<TensorId> {
    Ok(g.node(name, Op::EosPool(ops::EosPool {}), &[x, ids])?)
}

/// [B, T, D] -> [B, D].
pub fn pool(g: &mut GraphBuilder, x: TensorId, name: &str, kind: PoolKind) -> Result<TensorId> {
    Ok(g.node(name, Op::Pool(ops::Pool { kind }), &[x])?)
}

// ---- Maps and convolutions -------------------------------------------------------

/// [B, H*W, C] -> [B, ceil(H/2)*ceil(W/2), 4C] (Swin's patch merging).
pub fn patch_merge(g: &mut GraphBuilder, x: TensorId, name: &str, map: [usize; 2]) -> Result<TensorId> {
    Ok(g.node(name, Op::PatchMerge(ops::PatchMerge { map }), &[x])?)
}

/// The rows of a k x k convolution, [B, Ho*Wo, k*k*C], from an image or a channels-last map.
pub fn im2col(g: &mut GraphBuilder, x: TensorId, name: &str, geometry: ConvGeometry, channels_first: bool) -> Result<TensorId> {
    Ok(g.node(name, Op::Im2col(ops::Im2col { geometry, channels_first }), &[x])?)
}

/// Depthwise k x k conv over [B, H*W, C] with `{name}.weight` [k*k, C] and `{name}.bias` [C].
pub fn depthwise_conv(g: &mut GraphBuilder, x: TensorId, name: &str, channels: usize, geometry: ConvGeometry, act: Activation) -> Result<TensorId> {
    let w = g.weight(&format!("{name}.weight"), &[geometry.kernel * geometry.kernel, channels])?;
    let b = g.weight(&format!("{name}.bias"), &[channels])?;
    Ok(g.node(name, Op::DepthwiseConv(ops::DepthwiseConv { geometry, act }), &[x, w, b])?)
}

pub fn avg_pool(g: &mut GraphBuilder, x: TensorId, name: &str, geometry: ConvGeometry) -> Result<TensorId> {
    Ok(g.node(name, Op::AvgPool(ops::AvgPool { geometry }), &[x])?)
}

// ---- Detection heads -------------------------------------------------------------

/// OWL's class logits [B, P, Q] from image class embeddings [B, P, D], shift/scale
/// [B, P, 2], query embeddings [B*Q, D] and ids [B*Q, L] (padding queries).
pub fn owl_class_logits(g: &mut GraphBuilder, image: TensorId, name: &str, shift_scale: TensorId, queries: TensorId, ids: TensorId) -> Result<TensorId> {
    Ok(g.node(name, Op::NormDotHead(ops::NormDotHead { image_eps: 1e-6, text_eps: 1e-6 }), &[image, shift_scale, queries, ids])?)
}

// ---- Mixture of experts ----------------------------------------------------------

/// Router logits, softmax, top-k (and image routing's slots): x, router [D, E] -> [T, K, 3].
pub fn moe_gate(g: &mut GraphBuilder, x: TensorId, name: &str, router: TensorId, experts: usize, k: usize, routing: Routing) -> Result<TensorId> {
    Ok(g.node(name, Op::MoeGate(ops::MoeGate { experts, k, routing }), &[x, router])?)
}

/// Token routing's capacity-limited slot assignment: gate table -> routing table [T, K, 3].
pub fn moe_route(g: &mut GraphBuilder, gates: TensorId, name: &str, routing: Routing) -> Result<TensorId> {
    Ok(g.node(name, Op::MoeRoute(ops::MoeRoute { routing }), &[gates])?)
}

/// Tokens [.., D] into the expert-major buffer [E, R, D] by the routing table.
pub fn moe_dispatch(g: &mut GraphBuilder, x: TensorId, name: &str, table: TensorId, experts: usize, routing: Routing) -> Result<TensorId> {
    Ok(g.node(name, Op::MoeDispatch(ops::MoeDispatch { experts, routing }), &[x, table])?)
}

/// One linear layer per expert on [E, R, K] with `{name}.weight` [E, K, N] and `{name}.bias` [E, N].
pub fn expert_linear(g: &mut GraphBuilder, x: TensorId, name: &str, (e, k, n): (usize, usize, usize), act: Activation) -> Result<TensorId> {
    let w = g.weight(&format!("{name}.weight"), &[e, k, n])?;
    let b = g.weight(&format!("{name}.bias"), &[e, n])?;
    Ok(g.node(name, Op::ExpertMatMul(ops::ExpertMatMul { act, bias: true }), &[x, w, b])?)
}

/// residual + the gate-weighted expert outputs [E, R, D] of each token.
pub fn moe_combine(g: &mut GraphBuilder, y: TensorId, name: &str, table: TensorId, residual: TensorId) -> Result<TensorId> {
    Ok(g.node(name, Op::MoeCombine(ops::MoeCombine {}), &[y, table, residual])?)
}

// ---- Contrastive heads -------------------------------------------------------------

/// Attention pooling over kv [B, N, 2A] with one learned query `{name}.query` [A]
/// (pre-scaled) -> [B, A].
pub fn attention_pool(g: &mut GraphBuilder, kv: TensorId, name: &str, heads: usize) -> Result<TensorId> {
    let a = g.shape(kv)[2] / 2;
    let q = g.weight(&format!("{name}.query"), &[a])?;
    Ok(g.node(name, Op::AttentionPool(ops::AttentionPool { heads }), &[kv, q])?)
}

/// Rows of [.., D] divided by their L2 norm.
pub fn l2_normalize(g: &mut GraphBuilder, x: TensorId, name: &str) -> Result<TensorId> {
    Ok(g.node(name, Op::L2Normalize(ops::L2Normalize {}), &[x])?)
}

/// exp(logit_scale) * a [B, D] . b [N, D] (+ logit_bias) -> [B, N]; the scalars are
/// weights of their own ([1] each).
pub fn similarity(g: &mut GraphBuilder, a: TensorId, name: &str, b: TensorId, scale: TensorId, bias: Option<TensorId>) -> Result<TensorId> {
    let mut ins = vec![a, b, scale];
    ins.extend(bias);
    Ok(g.node(name, Op::Similarity(ops::Similarity { bias: bias.is_some() }), &ins)?)
}
