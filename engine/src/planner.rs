//! Memory planner: intermediate activations share buffers when their lifetimes do not
//! overlap (greedy by size: largest tensors first, each into the first buffer whose
//! tenants are all dead or not yet born). Inputs, outputs and weights are pinned. An
//! alias op's output (reshape) is its input's buffer: the two live as one tensor.
use crate::graph::{Graph, TensorKind};
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct MemoryPlan {
    /// For each tensor, its shared buffer (activations that are not graph outputs).
    pub slot_of: Vec<Option<usize>>,
    /// For each tensor, the tensor whose buffer holds it: itself, or for an alias op's
    /// output the root of its input.
    pub root: Vec<usize>,
    /// Size in bytes of each shared buffer.
    pub slot_bytes: Vec<u64>,
    /// Sum of the shared buffers.
    pub planned_bytes: u64,
    /// What one buffer per intermediate tensor would take.
    pub naive_bytes: u64,
}

pub fn plan_memory(g: &Graph, elem_bytes: u64) -> MemoryPlan {
    let n = g.tensors.len();
    let mut root: Vec<usize> = (0..n).collect();
    for node in &g.nodes {
        if node.op.is_alias() && !g.outputs.contains(&node.output) {
            root[node.output] = root[node.inputs[0]];
        }
    }
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for (i, node) in g.nodes.iter().enumerate() {
        let o = root[node.output];
        first[o] = first[o].min(i);
        last[o] = last[o].max(i);
        for &t in &node.inputs {
            last[root[t]] = last[root[t]].max(i);
        }
    }
    let mut planned: Vec<usize> = (0..n)
        .filter(|&t| g.tensors[t].kind == TensorKind::Activation && root[t] == t && !g.outputs.contains(&t) && first[t] != usize::MAX)
        .collect();
    let bytes = |t: usize| (g.tensors[t].numel() as u64 * elem_bytes).max(4);
    planned.sort_by_key(|&t| (std::cmp::Reverse(bytes(t)), t));
    let mut slot_of: Vec<Option<usize>> = vec![None; n];
    let mut slots: Vec<(u64, Vec<(usize, usize)>)> = Vec::new();
    for &t in &planned {
        let (a, b) = (first[t], last[t]);
        let free = slots.iter().position(|(_, live)| live.iter().all(|&(s, e)| b < s || e < a));
        let s = match free {
            Some(s) => s,
            None => {
                slots.push((bytes(t), Vec::new()));
                slots.len() - 1
            }
        };
        slots[s].1.push((a, b));
        slot_of[t] = Some(s);
    }
    for t in 0..n {
        slot_of[t] = slot_of[root[t]];
    }
    let slot_bytes: Vec<u64> = slots.iter().map(|(b, _)| *b).collect();
    MemoryPlan {
        slot_of,
        root,
        planned_bytes: slot_bytes.iter().sum(),
        slot_bytes,
        naive_bytes: planned.iter().map(|&t| bytes(t)).sum(),
    }
}
