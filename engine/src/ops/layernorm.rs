//! LayerNorm over the last dimension (statistics in f32 on the GPU, f64 in the reference).
use super::{u32_of, Arg, KernelPlan};
use super::Variant;
use crate::kernels::{Define, KernelKey};

uniform!("layernorm.wgsl", LayerNormParams { rows: u32, dim: u32, eps: f32, _pad: u32 });

pub fn infer(x: &[usize], gamma: &[usize], beta: &[usize]) -> Result<Vec<usize>, String> {
    let Some(&d) = x.last() else { return Err("layernorm input has no dimensions".into()) };
    if gamma != [d] || beta != [d] {
        return Err(format!("layernorm weight and bias must be [{d}], got {gamma:?} and {beta:?}"));
    }
    Ok(x.to_vec())
}

variant_enum!(LayerNormVariant {
    /// One workgroup per row, reductions in workgroup memory.
    Main = "main",
    /// One subgroup per row, vec4 loads (dim a multiple of 4); can write a texture.
    Sg = "sg",
});

fn key(v: LayerNormVariant, tex_out: bool) -> KernelKey {
    let (entry, mut defines) = match v {
        LayerNormVariant::Main => ("main", vec![]),
        LayerNormVariant::Sg => ("main_sg", vec![Define::Flag("SG")]),
    };
    if tex_out {
        defines.push(Define::Flag("TEX_OUT"));
    }
    KernelKey { shader: "layernorm.wgsl", entry, defines, constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key(LayerNormVariant::Main, false), key(LayerNormVariant::Sg, false), key(LayerNormVariant::Sg, true)]
}

pub fn plan(x: &[usize], eps: f32, v: LayerNormVariant, tex_out: bool) -> Result<KernelPlan, String> {
    let d = x[x.len() - 1];
    let rows: usize = x[..x.len() - 1].iter().product();
    let params = LayerNormParams { rows: u32_of(rows, "rows")?, dim: u32_of(d, "dim")?, eps, _pad: 0 };
    if tex_out && v != LayerNormVariant::Sg {
        return Err(format!("layernorm variant {} cannot write a texture", v.name()));
    }
    let out = if tex_out { Arg::OutputTexture } else { Arg::Output };
    Ok(KernelPlan {
        chunks: None,
        key: key(v, tex_out),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, Arg::Input(2)), (4, out)],
        workgroups: match v {
            LayerNormVariant::Main => rows as u64,
            LayerNormVariant::Sg => rows.div_ceil(8) as u64,
        },
    })
}

pub fn reference(x: &[f64], g: &[f64], b: &[f64], s: &[usize], eps: f32) -> Vec<f64> {
    let d = s[s.len() - 1];
    let mut out = vec![0.0; x.len()];
    for (row, o) in x.chunks(d).zip(out.chunks_mut(d)) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for c in 0..d {
            o[c] = (row[c] - mean) * inv * g[c] + b[c];
        }
    }
    out
}

/// inputs: x [.., D], gamma [D], beta [D].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerNorm { pub eps: f32 }

impl super::OpDef for LayerNorm {
    const NAME: &'static str = "layernorm";
    type Params = LayerNormParams;
    type Variant = LayerNormVariant;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 3)?;
        infer(s[0], s[1], s[2])
    }

    fn candidates(&self, s: &[&[usize]], ctx: &super::PlanCtx) -> Vec<LayerNormVariant> {
        use LayerNormVariant::*;
        let sg_ok = ctx.caps.subgroup && s[0].last().is_some_and(|d| d % 4 == 0);
        match (sg_ok, ctx.caps.cpu) {
            (true, true) => vec![Sg, Main],
            (true, false) => vec![Main, Sg],
            (false, _) => vec![Main],
        }
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, v: LayerNormVariant) -> Result<KernelPlan, String> {
        let _ = out;
        plan(s[0], self.eps, v, ctx.out_texture)
    }

    fn texture_output(&self, v: LayerNormVariant) -> bool {
        v == LayerNormVariant::Sg
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], x[1], x[2], s[0], self.eps)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
