//! Memory planner: intermediate activations share buffers when their lifetimes do not
//! overlap (greedy by size: largest tensors first, each into the first buffer whose
//! tenants are all dead or not yet born). Inputs, outputs and weights are pinned.
use crate::graph::{Graph, TensorKind};
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct MemoryPlan {
    /// For each tensor, its shared buffer (activations that are not graph outputs).
    pub slot_of: Vec<Option<usize>>,
    /// Size in bytes of each shared buffer.
    pub slot_bytes: Vec<u64>,
    /// Sum of the shared buffers.
    pub planned_bytes: u64,
    /// What one buffer per intermediate tensor would take.
    pub naive_bytes: u64,
}

pub fn plan_memory(g: &Graph, elem_bytes: u64) -> MemoryPlan {
    let n = g.tensors.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for (i, node) in g.nodes.iter().enumerate() {
        first[node.output] = first[node.output].min(i);
        last[node.output] = last[node.output].max(i);
        for &t in &node.inputs {
            last[t] = last[t].max(i);
        }
    }
    let mut planned: Vec<usize> = (0..n)
        .filter(|&t| g.tensors[t].kind == TensorKind::Activation && !g.outputs.contains(&t) && first[t] != usize::MAX)
        .collect();
    let bytes = |t: usize| (g.tensors[t].numel() as u64 * elem_bytes).max(4);
    planned.sort_by_key(|&t| (std::cmp::Reverse(bytes(t)), t));
    let mut slot_of = vec![None; n];
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
    let slot_bytes: Vec<u64> = slots.iter().map(|(b, _)| *b).collect();
    MemoryPlan {
        slot_of,
        planned_bytes: slot_bytes.iter().sum(),
        slot_bytes,
        naive_bytes: planned.iter().map(|&t| bytes(t)).sum(),
    }
}
