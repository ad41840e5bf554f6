//! Rows divided by their L2 norm (contrastive embeddings before the similarity);
//! a zero row stays zero.
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("l2_normalize.wgsl", L2NormalizeParams { rows: u32, dim: u32, _pad0: u32, _pad1: u32 });

fn key() -> KernelKey {
    KernelKey { shader: "l2_normalize.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(x: &[usize]) -> Result<KernelPlan, String> {
    let dim = *x.last().ok_or("l2 normalize needs at least one dimension")?;
    let rows: usize = x[..x.len() - 1].iter().product();
    let params = L2NormalizeParams { rows: u32_of(rows, "rows")?, dim: u32_of(dim, "dim")?, ..Default::default() };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Output)],
        workgroups: rows as u64,
    })
}

pub fn reference(x: &[f64], s: &[usize]) -> Vec<f64> {
    let d = *s.last().unwrap_or(&1);
    x.chunks(d.max(1))
        .flat_map(|r| {
            let n = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.iter().map(move |v| if n > 0.0 { v / n } else { 0.0 })
        })
        .collect()
}

/// inputs: x [.., D] -> the same shape.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct L2Normalize {}

impl super::OpDef for L2Normalize {
    const NAME: &'static str = "l2_normalize";
    type Params = L2NormalizeParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 1)?;
        match s[0].last() {
            Some(d) if *d > 0 => Ok(s[0].to_vec()),
            _ => Err(format!("l2 normalize needs [.., D] with D > 0, got {:?}", s[0])),
        }
    }

    fn plan(&self, s: &[&[usize]], _out: &[usize], _ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        plan(s[0])
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], _out: &[usize]) -> Vec<f64> {
        reference(x[0], s[0])
    }

    fn flops(&self, _s: &[&[usize]], _out: &[usize]) -> u64 {
        0 // no contractions
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
