//! Per-image channel gating (squeeze-excitation's excite step): x [B, T, C] times
//! act(s) [B, C], broadcast over the T positions; `act` is the gate (sigmoid for SE).
//! `skip` drops leading tokens (patch tokens scaled by a class token, without it).
use super::{u32_of, Activation, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("channel_scale.wgsl", ChannelScaleParams {
    len: u32, tokens: u32, channels: u32, act: u32, skip: u32, _pad0: u32, _pad1: u32, _pad2: u32,
});

pub fn infer(x: &[usize], s: &[usize], skip: usize) -> Result<Vec<usize>, String> {
    match (x, s) {
        ([b, t, c], [sb, sc]) if b == sb && c == sc && skip < *t => Ok(vec![*b, t - skip, *c]),
        _ => Err(format!("channel scale needs x [B, T, C] and s [B, C], got {x:?} and {s:?}")),
    }
}

variant_enum!(ChannelScaleVariant {
    /// One element per invocation.
    Main = "main",
    /// Four channels per invocation, vec4 loads (channels a multiple of 4); can write a texture.
    Quad = "quad",
});

fn key(v: ChannelScaleVariant, tex_out: bool) -> KernelKey {
    let (entry, mut defines) = match v {
        ChannelScaleVariant::Main => ("main", vec![]),
        ChannelScaleVariant::Quad => ("main_quad", vec![crate::kernels::Define::Flag("QUAD")]),
    };
    if tex_out {
        defines.push(crate::kernels::Define::Flag("TEX_OUT"));
    }
    KernelKey { shader: "channel_scale.wgsl", entry, defines, constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key(ChannelScaleVariant::Main, false), key(ChannelScaleVariant::Quad, false), key(ChannelScaleVariant::Quad, true)]
}

pub fn plan(out: &[usize], act: Activation, skip: usize, v: ChannelScaleVariant, tex_out: bool) -> Result<KernelPlan, String> {
    if tex_out && v != ChannelScaleVariant::Quad {
        return Err("channel_scale writes a texture only in its quad variant".into());
    }
    let len: usize = out.iter().product();
    let params = ChannelScaleParams {
        len: u32_of(len, "elements")?,
        tokens: u32_of(out[1], "tokens")?,
        channels: u32_of(out[2], "channels")?,
        act: act.code(),
        skip: u32_of(skip, "skip")?,
        ..Default::default()
    };
    Ok(KernelPlan {
        chunks: None,
        key: key(v, tex_out),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, if tex_out { Arg::OutputTexture } else { Arg::Output })],
        workgroups: (len / if v == ChannelScaleVariant::Quad { 4 } else { 1 }).div_ceil(64) as u64,
    })
}

pub fn reference(x: &[f64], sc: &[f64], s: &[usize], act: Activation, skip: usize) -> Vec<f64> {
    let (t, c) = (s[1], s[2]);
    x.iter()
        .enumerate()
        .filter(|(i, _)| (i / c) % t >= skip)
        .map(|(i, &v)| v * act.apply(sc[(i / (t * c)) * c + i % c]))
        .collect()
}

/// inputs: x [B, T, C], s [B, C] -> x[:, skip:] * act(s).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChannelScale {
    pub act: Activation,
    #[serde(default)]
    pub skip: usize,
}

impl super::OpDef for ChannelScale {
    const NAME: &'static str = "channel_scale";
    type Params = ChannelScaleParams;
    type Variant = ChannelScaleVariant;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 2)?;
        infer(s[0], s[1], self.skip)
    }

    fn candidates(&self, s: &[&[usize]], _ctx: &super::PlanCtx) -> Vec<ChannelScaleVariant> {
        if s[0].len() == 3 && s[0][2].is_multiple_of(4) { vec![ChannelScaleVariant::Quad, ChannelScaleVariant::Main] } else { vec![ChannelScaleVariant::Main] }
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, v: ChannelScaleVariant) -> Result<KernelPlan, String> {
        let _ = s;
        plan(out, self.act, self.skip, v, ctx.out_texture)
    }

    fn texture_output(&self, v: ChannelScaleVariant) -> bool {
        v == ChannelScaleVariant::Quad
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], x[1], s[0], self.act, self.skip)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
