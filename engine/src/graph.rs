//! Static graph IR: plain data (tensors with resolved shapes, nodes in execution order),
//! serializable so `wgvision inspect --graph` can print it. Shapes are checked as nodes
//! are added, so a built graph is consistent.
use crate::error::{EngineError, Result};
use crate::ops::Op;
use serde::{Deserialize, Serialize};

pub type TensorId = usize;

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
            .sum()
    }

    /// Build a new graph.
    pub fn builder() -> GraphBuilder {
        GraphBuilder { g: Graph::default() }
    }
}

/// Adds tensors and nodes, inferring and checking shapes as it goes.
pub struct GraphBuilder {
    g: Graph,
}

impl GraphBuilder {
    fn tensor(&mut self, name: &str, shape: Vec<usize>, kind: TensorKind) -> Result<TensorId> {
        if self.g.find(name).is_some() {
            return Err(EngineError::InvalidGraph(format!("tensor name {name} used twice")));
        }
        self.g.tensors.push(TensorDesc { name: name.to_string(), shape, kind });
        Ok(self.g.tensors.len() - 1)
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
    pub fn node(&mut self, name: &str, op: Op, inputs: &[TensorId]) -> Result<TensorId> {
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
        if self.g.find(name).is_some_and(|x| x != t) {
            return Err(EngineError::InvalidGraph(format!("tensor name {name} used twice")));
        }
        self.g.tensors[t].name = name.to_string();
        self.g.outputs.push(t);
        Ok(())
    }

    pub fn finish(self) -> Graph {
        self.g
    }
}
