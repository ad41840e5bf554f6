//! Building blocks shared by the model builders: LayerNorm and Linear (matmul with
//! fused bias / activation / residual) over weights named `{name}.weight` / `{name}.bias`.
use wgvision_engine::ops;
use crate::Result;
use wgvision_engine::{Activation, GraphBuilder, Op, TensorId};

pub fn layer_norm(g: &mut GraphBuilder, x: TensorId, name: &str, d: usize, eps: f32) -> Result<TensorId> {
    let w = g.weight(&format!("{name}.weight"), &[d])?;
    let b = g.weight(&format!("{name}.bias"), &[d])?;
    Ok(g.node(name, Op::LayerNorm(ops::LayerNorm { eps }), &[x, w, b])?)
}

pub fn linear(
    g: &mut GraphBuilder,
    x: TensorId,
    name: &str,
    (k, n): (usize, usize),
    bias: bool,
    act: Activation,
    residual: Option<TensorId>,
) -> Result<TensorId> {
    let mut ins = vec![x, g.weight(&format!("{name}.weight"), &[k, n])?];
    if bias {
        ins.push(g.weight(&format!("{name}.bias"), &[n])?);
    }
    ins.extend(residual);
    Ok(g.node(name, Op::MatMul(ops::MatMul { act, bias, residual: residual.is_some() }), &ins)?)
}
