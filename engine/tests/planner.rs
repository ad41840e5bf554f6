//! Memory planner: buffers are shared only between tensors whose lifetimes do not
//! overlap, and a deep chain needs far less than one buffer per tensor.
use wgvision_engine::ops;
use wgvision_engine::planner::plan_memory;
use wgvision_engine::{Activation, Graph, Op};

#[test]
fn shared_buffers_never_hold_two_live_tensors() {
    let mut b = Graph::builder();
    let x = b.input("x", &[4, 16]).unwrap();
    let w = b.weight("w", &[16, 16]).unwrap();
    let mut t = x;
    let mut skip = x;
    for i in 0..12 {
        let op = Op::MatMul(ops::MatMul { act: Activation::Gelu, bias: false, residual: i % 3 == 2 });
        let ins = if i % 3 == 2 { vec![t, w, skip] } else { vec![t, w] };
        t = b.node(&format!("n{i}"), op, &ins).unwrap();
        if i % 3 == 2 {
            skip = t;
        }
    }
    b.output(t, "y").unwrap();
    let g = b.finish();
    let plan = plan_memory(&g, 4);
    // Lifetimes: [producer, last consumer].
    let life = |id: usize| {
        let first = g.nodes.iter().position(|n| n.output == id).unwrap();
        let last = g.nodes.iter().rposition(|n| n.inputs.contains(&id)).unwrap_or(first);
        (first, last)
    };
    for a in 0..g.tensors.len() {
        for c in a + 1..g.tensors.len() {
            if let (Some(sa), Some(sc)) = (plan.slot_of[a], plan.slot_of[c]) {
                if sa == sc {
                    let ((a0, a1), (c0, c1)) = (life(a), life(c));
                    assert!(a1 < c0 || c1 < a0, "{} and {} share a buffer while both live", g.tensors[a].name, g.tensors[c].name);
                }
            }
        }
    }
    assert_eq!(plan.slot_of[g.outputs[0]], None, "outputs are pinned");
    assert!(plan.planned_bytes * 3 <= plan.naive_bytes, "planned {} vs naive {}", plan.planned_bytes, plan.naive_bytes);
}
