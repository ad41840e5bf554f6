//! Image-text similarity logits of contrastive models: out[i, j] = exp(logit_scale) * <a_i, b_j>
//! (+ logit_bias), on embeddings already L2-normalised.
use super::{mul, u32_of, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("similarity.wgsl", SimilarityParams { rows: u32, cols: u32, dim: u32, bias: u32 });

fn key() -> KernelKey {
    KernelKey { shader: "similarity.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

/// inputs: a [B, D], b [N, D], logit_scale [1] (and logit_bias [1]).
pub fn infer(s: &[&[usize]], bias: bool) -> Result<Vec<usize>, String> {
    super::expect_inputs(s, 3 + bias as usize)?;
    let ok_scalars = s[2] == [1] && (!bias || s[3] == [1]);
    match (s[0], s[1]) {
        ([b, d], [n, d2]) if d == d2 && ok_scalars => Ok(vec![*b, *n]),
        _ => Err(format!("similarity needs a [B, D], b [N, D], logit_scale [1]{}; got {s:?}", if bias { ", logit_bias [1]" } else { "" })),
    }
}

pub fn plan(s: &[&[usize]], bias: bool) -> Result<KernelPlan, String> {
    let (rows, cols) = (s[0][0], s[1][0]);
    let params = SimilarityParams { rows: u32_of(rows, "rows")?, cols: u32_of(cols, "columns")?, dim: u32_of(s[0][1], "dim")?, bias: bias as u32 };
    // Without a bias the scale binds twice (the shader reads the bias only when asked).
    let bias_arg = if bias { Arg::Input(3) } else { Arg::Input(2) };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (3, Arg::Input(2)), (4, bias_arg), (5, Arg::Output)],
        workgroups: (rows * cols).div_ceil(64) as u64,
    })
}

pub fn reference(x: &[&[f64]], s: &[&[usize]], bias: bool) -> Vec<f64> {
    let (b, n, d) = (s[0][0], s[1][0], s[0][1]);
    let (scale, shift) = (x[2][0].exp(), if bias { x[3][0] } else { 0.0 });
    let mut o = Vec::with_capacity(b * n);
    for i in 0..b {
        for j in 0..n {
            let dot: f64 = x[0][i * d..(i + 1) * d].iter().zip(&x[1][j * d..(j + 1) * d]).map(|(a, b)| a * b).sum();
            o.push(scale * dot + shift);
        }
    }
    o
}

/// inputs: a [B, D], b [N, D], logit_scale [1], (logit_bias [1]) -> [B, N].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Similarity {
    pub bias: bool,
}

impl super::OpDef for Similarity {
    const NAME: &'static str = "similarity";
    type Params = SimilarityParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        infer(s, self.bias)
    }

    fn plan(&self, s: &[&[usize]], _out: &[usize], _ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        plan(s, self.bias)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], _out: &[usize]) -> Vec<f64> {
        reference(x, s, self.bias)
    }

    fn flops(&self, s: &[&[usize]], _out: &[usize]) -> u64 {
        mul(&[2, s[0][0] as u64, s[1][0] as u64, s[0][1] as u64])
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
