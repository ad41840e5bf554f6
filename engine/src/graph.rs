//! Static graph IR: plain data (tensors with resolved shapes, nodes in execution order),
//! serializable so `wgvision inspect --graph` can print it. Shapes are checked as nodes
//! are added, so a built graph is consistent.
use crate::error::{EngineError, Result};
use crate::ops::Op;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub type TensorId = usize;

/// Most tensors a graph may hold. The largest released models have a few thousand; a
/// config past this (a model file claiming a depth of 10^12) is refused while its graph
/// is built, instead of spending unbounded time and memory on a graph no file can fill.
pub const MAX_GRAPH_TENSORS: usize = 1 << 16;

/// Most elements (and largest dimension) of one graph tensor: 2^48, a petabyte of f32,
/// far past any device. Below it element counts, byte sizes and their sums fit in 64
/// bits, so shape arithmetic downstream cannot overflow; a config whose sizes give a
/// larger tensor (a `mlp_ratio` of 1e20) is refused while its graph is built.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorKind {
    Input,
    Weight,
    Activation,
    /// An activation held in an rgba32float texture [K/4 x M] (the lowering pass's
    /// to_texture nodes write them; graphs never make one).
    Texture,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TensorDesc {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: TensorKind,
}

impl TensorDesc {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    #[serde(flatten)]
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Graph {
    pub tensors: Vec<TensorDesc>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

impl Graph {
    pub fn shape(&self, t: TensorId) -> &[usize] {
        &self.tensors[t].shape
    }

    pub fn find(&self, name: &str) -> Option<TensorId> {
        self.tensors.iter().position(|t| t.name == name)
    }

    /// Weight tensors in first-use order.
    pub fn weights(&self) -> impl Iterator<Item = &TensorDesc> {
        self.tensors.iter().filter(|t| t.kind == TensorKind::Weight)
    }

    /// Total FLOPs of one execution (matmuls and attention).
    pub fn flops(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| {
                let shapes: Vec<&[usize]> = n.inputs.iter().map(|&i| self.shape(i)).collect();
                n.op.flops(&shapes, self.shape(n.output))
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Build a new graph.
    pub fn builder() -> GraphBuilder {
        GraphBuilder { g: Graph::default(), names: HashMap::new() }
    }
}

/// Adds tensors and nodes, inferring and checking shapes as it goes.
pub struct GraphBuilder {
    g: Graph,
    /// Tensor name -> id, so adding a tensor does not scan the whole graph.
    names: HashMap<String, TensorId>,
}

impl GraphBuilder {
    fn tensor(&mut self, name: &str, shape: Vec<usize>, kind: TensorKind) -> Result<TensorId> {
        if self.names.contains_key(name) {
            return Err(EngineError::InvalidGraph(format!("tensor name {name} used twice")));
        }
        if self.g.tensors.len() >= MAX_GRAPH_TENSORS {
            return Err(EngineError::InvalidGraph(format!(
                "more than {MAX_GRAPH_TENSORS} tensors (at '{name}'); the model config's depth is implausible"
            )));
        }
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if shape.iter().any(|&d| d > MAX_TENSOR_ELEMENTS) || numel.is_none_or(|n| n > MAX_TENSOR_ELEMENTS) {
            return Err(EngineError::InvalidGraph(format!(
                "tensor {name} of shape {shape:?} has more than 2^48 elements; the model config's sizes are implausible"
            )));
        }
        let id = self.g.tensors.len();
        self.g.tensors.push(TensorDesc { name: name.to_string(), shape, kind });
        self.names.insert(name.to_string(), id);
        Ok(id)
    }

    pub fn input(&mut self, name: &str, shape: &[usize]) -> Result<TensorId> {
        let id = self.tensor(name, shape.to_vec(), TensorKind::Input)?;
        self.g.inputs.push(id);
        Ok(id)
    }

    pub fn weight(&mut self, name: &str, shape: &[usize]) -> Result<TensorId> {
        self.tensor(name, shape.to_vec(), TensorKind::Weight)
    }

    pub fn shape(&self, t: TensorId) -> &[usize] {
        self.g.shape(t)
    }

    /// Append a node; its output tensor is named after the node.
    pub fn node(&mut self, name: &str, op: impl Into<Op>, inputs: &[TensorId]) -> Result<TensorId> {
        let op = op.into();
        let shapes: Vec<&[usize]> = inputs.iter().map(|&i| self.g.shape(i)).collect();
        let out = op.infer(&shapes).map_err(|message| EngineError::InvalidOp { node: name.to_string(), message })?;
        let output = self.tensor(name, out, TensorKind::Activation)?;
        self.g.nodes.push(Node { name: name.to_string(), op, inputs: inputs.to_vec(), output });
        Ok(output)
    }

    /// Mark an activation as a graph output under a new name (e.g. "logits").
    pub fn output(&mut self, t: TensorId, name: &str) -> Result<()> {
        if self.g.tensors[t].kind != TensorKind::Activation {
            return Err(EngineError::InvalidGraph(format!("output {name} is not computed by a node")));
        }
        if self.names.get(name).is_some_and(|&x| x != t) {
            return Err(EngineError::InvalidGraph(format!("tensor name {name} used twice")));
        }
        let old = std::mem::replace(&mut self.g.tensors[t].name, name.to_string());
        self.names.remove(&old);
        self.names.insert(name.to_string(), t);
        self.g.outputs.push(t);
        Ok(())
    }

    pub fn finish(self) -> Graph {
        self.g
    }
}
