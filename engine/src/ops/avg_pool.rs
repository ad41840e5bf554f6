//! Average pooling k x k over a channels-last map, padding counted as zeros (PyTorch's
//! count_include_pad): an inverted-residual block's downsampling shortcut.
use super::depthwise_conv::{self, ConvGeometry};
use super::{expect_inputs, mul, Arg, KernelPlan, OpDef, PlanCtx, Single};
use crate::kernels::KernelKey;

uniform!("avg_pool.wgsl", AvgPoolParams {
    batch: u32, height: u32, width: u32, channels: u32, out_h: u32, out_w: u32, kernel: u32, stride: u32,
    pad_top: u32, pad_left: u32, _pad0: u32, _pad1: u32,
});

/// inputs: x [B, H*W, C] -> [B, Ho*Wo, C]: the mean over each k x k window.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AvgPool {
    pub geometry: ConvGeometry,
}

fn key() -> KernelKey {
    KernelKey { shader: "avg_pool.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

impl OpDef for AvgPool {
    const NAME: &'static str = "avg_pool";
    type Params = AvgPoolParams;
    type Variant = Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        expect_inputs(s, 1)?;
        depthwise_conv::infer(s, &self.geometry)
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], _ctx: &PlanCtx, _v: Single) -> Result<KernelPlan, String> {
        let [batch, height, width, channels, out_h, out_w, kernel, stride, pad_top, pad_left] = self.geometry.uniform_dims(s[0][0], s[0][2])?;
        let params = AvgPoolParams { batch, height, width, channels, out_h, out_w, kernel, stride, pad_top, pad_left, ..Default::default() };
        Ok(KernelPlan {
            chunks: None,
            key: key(),
            params: bytemuck::bytes_of(&params).to_vec(),
            bindings: vec![(1, Arg::Input(0)), (2, Arg::Output)],
            workgroups: out.iter().product::<usize>().div_ceil(64) as u64,
        })
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], _out: &[usize]) -> Vec<f64> {
        let (g, c) = (&self.geometry, s[0][2]);
        let taps = vec![1.0 / (g.kernel * g.kernel) as f64; g.kernel * g.kernel * c];
        depthwise_conv::reference(&[x[0], &taps, &vec![0.0; c]], s[0], g, super::Activation::None)
    }

    fn flops(&self, _s: &[&[usize]], out: &[usize]) -> u64 {
        let k = self.geometry.kernel as u64;
        mul(&[k, k, out.iter().fold(1u64, |a, &b| a.saturating_mul(b as u64))])
    }

    fn shader_variants() -> Vec<KernelKey> {
        vec![key()]
    }
}
