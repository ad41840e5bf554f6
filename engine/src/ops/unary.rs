//! Standalone elementwise activation (the same functions the matmul epilogue fuses); with
//! no activation, the copy the lowering pass makes of a reshape that is a graph output.
use super::{u32_of, Activation, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("unary.wgsl", UnaryParams { len: u32, act: u32, _pad0: u32, _pad1: u32 });

fn key() -> KernelKey {
    KernelKey { shader: "unary.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(out: &[usize], act: Activation) -> Result<KernelPlan, String> {
    let len: usize = out.iter().product();
    let params = UnaryParams { len: u32_of(len, "elements")?, act: act.code(), ..Default::default() };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Output)],
        workgroups: len.div_ceil(64) as u64,
    })
}

/// inputs: x (any shape).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Unary { pub act: Activation }

impl super::OpDef for Unary {
    const NAME: &'static str = "unary";
    type Params = UnaryParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 1)?;
        Ok(s[0].to_vec())
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(out, self.act)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        x[0].iter().map(|&v| self.act.apply(v)).collect()
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
