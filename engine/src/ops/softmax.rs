//! Softmax over the last dimension, subtracting the row max.
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("softmax.wgsl", SoftmaxParams { rows: u32, dim: u32, _pad0: u32, _pad1: u32 });

pub fn infer(x: &[usize]) -> Result<Vec<usize>, String> {
    if x.is_empty() {
        return Err("softmax input has no dimensions".into());
    }
    Ok(x.to_vec())
}

fn key() -> KernelKey {
    KernelKey { shader: "softmax.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(x: &[usize]) -> Result<KernelPlan, String> {
    let d = x[x.len() - 1];
    let rows: usize = x[..x.len() - 1].iter().product();
    let params = SoftmaxParams { rows: u32_of(rows, "rows")?, dim: u32_of(d, "dim")?, ..Default::default() };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Output)],
        workgroups: rows as u64,
    })
}

pub fn reference(x: &[f64], s: &[usize]) -> Vec<f64> {
    let d = s[s.len() - 1];
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - mx).exp()).sum();
        out.extend(row.iter().map(|v| (v - mx).exp() / sum));
    }
    out
}

/// inputs: x [.., D].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Softmax {}

impl super::OpDef for Softmax {
    const NAME: &'static str = "softmax";
    type Params = SoftmaxParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 1)?;
        infer(s[0])
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s[0])
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], s[0])
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
