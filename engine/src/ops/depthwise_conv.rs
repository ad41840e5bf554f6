//! Depthwise convolution over a channels-last map (an inverted-residual block's k x k
//! stage), with stride, explicit padding, folded-BatchNorm bias and a fused activation.
use super::{u32_of, Activation, Arg, KernelPlan};
use crate::kernels::KernelKey;
use serde::{Deserialize, Serialize};

uniform!("depthwise_conv.wgsl", DepthwiseConvParams {
    batch: u32, height: u32, width: u32, channels: u32, out_h: u32, out_w: u32, kernel: u32, stride: u32,
    pad_top: u32, pad_left: u32, act: u32, _pad0: u32,
});

/// Geometry of one depthwise convolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvGeometry {
    /// Input map [H, W].
    pub map: [usize; 2],
    pub kernel: usize,
    pub stride: usize,
    /// Zero padding above and left of the map; below/right is whatever the output size needs.
    pub pad: [usize; 2],
    /// Output map [Ho, Wo].
    pub out: [usize; 2],
}

impl ConvGeometry {
    /// PyTorch padding `kernel // 2` on every side.
    pub fn symmetric(map: [usize; 2], kernel: usize, stride: usize) -> ConvGeometry {
        let p = kernel / 2;
        let out = map.map(|n| (n + 2 * p - kernel) / stride + 1);
        ConvGeometry { map, kernel, stride, pad: [p, p], out }
    }

    /// No padding ("VALID"): output floor((n - kernel) / stride) + 1.
    pub fn valid(map: [usize; 2], kernel: usize, stride: usize) -> ConvGeometry {
        let out = map.map(|n| n.saturating_sub(kernel) / stride + 1);
        ConvGeometry { map, kernel, stride, pad: [0, 0], out }
    }

    /// The uniform fields both window kernels (depthwise conv, average pooling) read:
    /// [batch, height, width, channels, out_h, out_w, kernel, stride, pad_top, pad_left].
    pub(crate) fn uniform_dims(&self, batch: usize, channels: usize) -> Result<[u32; 10], String> {
        Ok([
            u32_of(batch, "batch")?,
            u32_of(self.map[0], "height")?,
            u32_of(self.map[1], "width")?,
            u32_of(channels, "channels")?,
            u32_of(self.out[0], "out height")?,
            u32_of(self.out[1], "out width")?,
            u32_of(self.kernel, "kernel")?,
            u32_of(self.stride, "stride")?,
            u32_of(self.pad[0], "padding")?,
            u32_of(self.pad[1], "padding")?,
        ])
    }

    /// TensorFlow "SAME": output ceil(n / stride), the odd padding pixel at the bottom/right.
    pub fn tf_same(map: [usize; 2], kernel: usize, stride: usize) -> ConvGeometry {
        let out = map.map(|n| n.div_ceil(stride));
        let pad = [0, 1].map(|a| ((out[a] - 1) * stride + kernel).saturating_sub(map[a]) / 2);
        ConvGeometry { map, kernel, stride, pad, out }
    }
}

pub fn infer(s: &[&[usize]], g: &ConvGeometry) -> Result<Vec<usize>, String> {
    let [b, t, c] = s[0] else {
        return Err(format!("depthwise conv needs [B, H*W, C], got {:?}", s[0]));
    };
    if g.map[0] * g.map[1] != *t || g.kernel == 0 || g.stride == 0 || g.out.contains(&0) {
        return Err(format!("input has {t} tokens; geometry {g:?} does not fit it"));
    }
    if s.len() == 1 {
        return Ok(vec![*b, g.out[0] * g.out[1], *c]); // average pooling's geometry check
    }
    if s[1] != [g.kernel * g.kernel, *c] || s[2] != [*c] {
        return Err(format!("weights must be [{}, {c}] and bias [{c}], got {:?} and {:?}", g.kernel * g.kernel, s[1], s[2]));
    }
    Ok(vec![*b, g.out[0] * g.out[1], *c])
}

variant_enum!(DepthwiseVariant {
    /// One channel per lane.
    Main = "main",
    /// Four channels per lane with vec4 loads (channels a multiple of 4).
    Vec4 = "vec4",
});

fn key(v: DepthwiseVariant) -> KernelKey {
    match v {
        DepthwiseVariant::Main => KernelKey { shader: "depthwise_conv.wgsl", entry: "main", defines: vec![], constants: vec![] },
        DepthwiseVariant::Vec4 => KernelKey { shader: "depthwise_conv.wgsl", entry: "main_vec4", defines: vec![crate::kernels::Define::Flag("VEC4")], constants: vec![] },
    }
}

fn variants() -> Vec<KernelKey> {
    vec![key(DepthwiseVariant::Main), key(DepthwiseVariant::Vec4)]
}

pub fn plan(s: &[&[usize]], out: &[usize], g: &ConvGeometry, act: Activation, v: DepthwiseVariant) -> Result<KernelPlan, String> {
    let [batch, height, width, channels, out_h, out_w, kernel, stride, pad_top, pad_left] = g.uniform_dims(s[0][0], s[0][2])?;
    let params = DepthwiseConvParams { batch, height, width, channels, out_h, out_w, kernel, stride, pad_top, pad_left, act: act.code(), _pad0: 0 };
    let lanes = out.iter().product::<usize>() / if v == DepthwiseVariant::Vec4 { 4 } else { 1 };
    Ok(KernelPlan {
        chunks: None,
        key: key(v),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, Arg::Input(2)), (4, Arg::Output)],
        workgroups: lanes.div_ceil(64) as u64,
    })
}

pub fn reference(x: &[&[f64]], s: &[usize], g: &ConvGeometry, act: Activation) -> Vec<f64> {
    let (b, c) = (s[0], s[2]);
    let [h, w] = g.map;
    let [ho, wo] = g.out;
    let k = g.kernel;
    let mut out = Vec::with_capacity(b * ho * wo * c);
    for bb in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for ch in 0..c {
                    let mut acc = x[2][ch];
                    for ky in 0..k {
                        for kx in 0..k {
                            let y = (oy * g.stride + ky) as isize - g.pad[0] as isize;
                            let xx = (ox * g.stride + kx) as isize - g.pad[1] as isize;
                            if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                                acc += x[0][((bb * h + y as usize) * w + xx as usize) * c + ch] * x[1][(ky * k + kx) * c + ch];
                            }
                        }
                    }
                    out.push(act.apply(acc));
                }
            }
        }
    }
    out
}

/// inputs: x [B, H*W, C], weight [k*k, C], bias [C] -> [B, Ho*Wo, C].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DepthwiseConv { pub geometry: ConvGeometry, pub act: Activation }

impl super::OpDef for DepthwiseConv {
    const NAME: &'static str = "depthwise_conv";
    type Params = DepthwiseConvParams;
    type Variant = DepthwiseVariant;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 3)?;
        infer(s, &self.geometry)
    }

    fn candidates(&self, s: &[&[usize]], _ctx: &super::PlanCtx) -> Vec<DepthwiseVariant> {
        if s[0][2].is_multiple_of(4) { vec![DepthwiseVariant::Vec4, DepthwiseVariant::Main] } else { vec![DepthwiseVariant::Main] }
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, v: DepthwiseVariant) -> Result<KernelPlan, String> {
        let _ = ctx;
        plan(s, out, &self.geometry, self.act, v)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x, s[0], &self.geometry, self.act)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        let k = self.geometry.kernel as u64;
        super::mul(&[2, k, k, out.iter().fold(1u64, |a, &b| a.saturating_mul(b as u64))])
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
