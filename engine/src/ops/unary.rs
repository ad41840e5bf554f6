//! Standalone elementwise activation (the same functions the matmul epilogue fuses), and
//! reshape: a copy through the same kernel with no activation.
use super::{u32_of, uniform, Activation, Arg, KernelPlan};
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
