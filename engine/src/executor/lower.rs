//! The lowering pass: the graph as this adapter runs it. Adapter-specific steps become
//! ordinary nodes, so compile and record know no special cases:
//! - an activation that a node's chosen variant reads through a texture is first written
//!   into one by a `to_texture` node (CPU adapters' texture kernels), or, when the node
//!   right before produces it for this node alone and can write a texture, by that node;
//! - a reshape whose output is a graph output becomes a copy (elsewhere a reshape is an
//!   alias the memory planner resolves, and two pinned buffers cannot be one).
use super::weights::GpuWeights;
use crate::error::{EngineError, Result};
use crate::graph::{Graph, Node, TensorDesc, TensorKind};
use crate::ops::{Activation, Op, ToTexture, Unary};

/// Texture slots from here on hold textures a producer writes for the next node (below
/// them: the to_texture copies, by the input slot they feed).
const FUSED_SLOTS: usize = 64;

/// A lowered graph and the kernel variant of each of its nodes.
pub(crate) struct Lowered {
    pub graph: Graph,
    pub variants: Vec<&'static str>,
    /// Texture tensors and the consumer input they feed: textures of one size are shared
    /// per input slot (each is written right before the one node that reads it).
    pub texture_slot: std::collections::HashMap<usize, usize>,
}

pub(crate) fn lower(graph: &Graph, variants: &[&'static str], weights: &GpuWeights, fuse_textures: bool) -> Result<Lowered> {
    let mut g = Graph { tensors: graph.tensors.clone(), nodes: Vec::new(), inputs: graph.inputs.clone(), outputs: graph.outputs.clone() };
    let mut vs = Vec::new();
    let mut texture_slot = std::collections::HashMap::new();
    for (node, &variant) in graph.nodes.iter().zip(variants) {
        let mut node = node.clone();
        for &i in node.op.texture_inputs(variant) {
            let t = node.inputs[i];
            let desc = &graph.tensors[t];
            if desc.kind == TensorKind::Weight {
                if !weights.has_texture(&desc.name) {
                    return Err(EngineError::InvalidOp { node: node.name.clone(), message: format!("variant {variant} needs a texture of weight {}", desc.name) });
                }
                continue;
            }
            // The node just before produces it for this node alone, and its variant can
            // write a texture: it writes one, and no copy is needed (the texture is still
            // written right before the one node that reads it).
            let fusable = fuse_textures
                && g.nodes.last().is_some_and(|p| p.output == t)
                && vs.last().is_some_and(|&pv| g.nodes.last().is_some_and(|p| p.op.texture_output(pv)))
                && !graph.outputs.contains(&t)
                && graph.nodes.iter().flat_map(|n| &n.inputs).filter(|&&x| x == t).count() == 1
                && desc.kind == TensorKind::Activation;
            if fusable {
                g.tensors[t].kind = TensorKind::Texture;
                // Not an input slot: the producer may itself read a texture of this size
                // (a square matmul after another), and one dispatch cannot read and write
                // one texture. Alternating between two slots by the producer's position
                // keeps a chain of fused producers off each other's textures.
                texture_slot.insert(t, FUSED_SLOTS + (g.nodes.len() - 1) % 2);
                continue;
            }
            let name = format!("{}.to_texture", node.name);
            let out = g.tensors.len();
            g.tensors.push(TensorDesc { name: name.clone(), shape: desc.shape.clone(), kind: TensorKind::Texture });
            g.nodes.push(Node { name, op: Op::ToTexture(ToTexture {}), inputs: vec![t], output: out });
            vs.push("main");
            texture_slot.insert(out, i);
            node.inputs[i] = out;
        }
        if node.op.is_alias() && g.outputs.contains(&node.output) {
            node.op = Op::Unary(Unary { act: Activation::None });
        }
        g.nodes.push(node);
        vs.push(variant);
    }
    Ok(Lowered { graph: g, variants: vs, texture_slot })
}
