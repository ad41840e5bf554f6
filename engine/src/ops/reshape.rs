//! Reshape: the same values under another shape. No kernel runs: the memory planner gives
//! the output the input's buffer.
use super::{expect_inputs, KernelPlan, NoParams, OpDef, PlanCtx, Single};
use crate::kernels::KernelKey;

/// inputs: x -> the same values with `shape`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reshape {
    pub shape: Vec<usize>,
}

impl OpDef for Reshape {
    const NAME: &'static str = "reshape";
    type Params = NoParams;
    type Variant = Single;
    const ALIAS: bool = true;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        expect_inputs(s, 1)?;
        if self.shape.iter().product::<usize>() != s[0].iter().product::<usize>() {
            return Err(format!("cannot reshape {:?} to {:?}", s[0], self.shape));
        }
        Ok(self.shape.clone())
    }

    fn plan(&self, _s: &[&[usize]], _out: &[usize], _ctx: &PlanCtx, _v: Single) -> Result<KernelPlan, String> {
        Err("reshape has no kernel: its output aliases its input".into())
    }

    fn reference(&self, x: &[&[f64]], _s: &[&[usize]], _out: &[usize]) -> Vec<f64> {
        x[0].to_vec()
    }

    fn flops(&self, _s: &[&[usize]], _out: &[usize]) -> u64 {
        0
    }

    fn shader_variants() -> Vec<KernelKey> {
        vec![]
    }
}
