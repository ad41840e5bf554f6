//! Grouped expert matmul: out[e] = act(a[e] @ w[e] + bias[e]) for all E experts in one
//! dispatch (no per-expert dispatch loop).
use super::{expect_inputs, mul, u32_of, Activation, Arg, InputForm, KernelPlan, OpDef, PlanCtx};
use crate::kernels::{Define, KernelKey};

uniform!("expert_matmul.wgsl", ExpertMatmulParams {
    experts: u32, rows: u32, k: u32, n: u32, act: u32, expert0: u32, _pad1: u32, _pad2: u32,
});

pub fn infer(s: &[&[usize]], bias: bool) -> Result<Vec<usize>, String> {
    match (s[0], s[1]) {
        ([e, r, k], [we, wk, n]) if e == we && k == wk && r % 4 == 0 && (!bias || s[2] == [*e, *n]) => Ok(vec![*e, *r, *n]),
        _ => Err(format!("expert matmul needs a [E, R, K] (R a multiple of 4), w [E, K, N], bias [E, N]; got {s:?}")),
    }
}

fn key(bias: bool, v: ExpertMatmulVariant, er: u32) -> KernelKey {
    let mut defines = if bias { vec![Define::Flag("BIAS")] } else { vec![] };
    match v {
        ExpertMatmulVariant::Tex => defines.push(Define::Flag("TEX")),
        ExpertMatmulVariant::TexSg => defines.extend([Define::Flag("TEX"), Define::Flag("SG"), Define::Value("ER", er), Define::Value("EC", SG_COLS4)]),
        ExpertMatmulVariant::Tiled4 => defines.push(Define::Flag("TILED4")),
        ExpertMatmulVariant::Buffers => {}
    }
    let entry = match v {
        ExpertMatmulVariant::Buffers => "main",
        ExpertMatmulVariant::Tiled4 => "main_tiled4",
        _ => "main_tex",
    };
    KernelKey { shader: "expert_matmul.wgsl", entry, defines, constants: vec![] }
}

fn variants() -> Vec<KernelKey> {
    use ExpertMatmulVariant::*;
    let mut v = Vec::new();
    for bias in [false, true] {
        v.extend([key(bias, Buffers, 0), key(bias, Tiled4, 0), key(bias, Tex, 0), key(bias, TexSg, 4), key(bias, TexSg, 8)]);
    }
    v
}

/// Column texels per lane of the subgroup kernel (EC).
const SG_COLS4: u32 = 2;

/// Rows per lane of the subgroup kernel (8 columns each): 8 where rows per expert allow,
/// else 4 (4 x 16 measured 2.5x slower on lavapipe: twice the weight loads).
fn sg_rows(r: usize) -> usize {
    if r.is_multiple_of(8) { 8 } else { 4 }
}

fn plan(s: &[&[usize]], act: Activation, bias: bool, v: ExpertMatmulVariant) -> Result<KernelPlan, String> {
    let (e, r, k, n) = (s[0][0], s[0][1], s[0][2], s[1][2]);
    let tex = matches!(v, ExpertMatmulVariant::Tex | ExpertMatmulVariant::TexSg);
    let tiled4 = v == ExpertMatmulVariant::Tiled4;
    let sg = v == ExpertMatmulVariant::TexSg;
    let er = sg_rows(r);
    let base = ExpertMatmulParams {
        experts: u32_of(e, "experts")?,
        rows: u32_of(r, "rows")?,
        k: u32_of(k, "k")?,
        n: u32_of(n, "n")?,
        act: act.code(),
        ..Default::default()
    };
    let mut bindings = if tex {
        vec![(1, Arg::InputTexture(0)), (2, Arg::InputTexture(1)), (4, Arg::Output)]
    } else {
        vec![(1, Arg::Input(0)), (2, Arg::Input(1)), (4, Arg::Output)]
    };
    if bias {
        bindings.push((3, Arg::Input(2)));
    }
    // Experts are independent: a range of them reads A (a buffer) and writes the output
    // at that range's offset; weights, bias (and A's texture) are bound whole.
    let range = move |e0: usize, len: usize| -> Result<(Vec<u8>, u64), String> {
        let p = ExpertMatmulParams { experts: u32_of(len, "experts")?, expert0: u32_of(e0, "expert")?, ..base };
        let wg = if tiled4 {
            len * r.div_ceil(64) * (n / 4).div_ceil(16)
        } else if sg {
            ((len * r / er) * (n / 4).div_ceil(8 * SG_COLS4 as usize) * 8).div_ceil(64)
        } else if tex {
            ((len * r / 4) * (n / 4).div_ceil(2)).div_ceil(64)
        } else {
            ((len * r / 4) * n.div_ceil(4)).div_ceil(64)
        };
        Ok((bytemuck::bytes_of(&p).to_vec(), wg as u64))
    };
    let mut row_bytes = vec![(4, (4 * r * n) as u64)];
    if !tex {
        row_bytes.push((1, (4 * r * k) as u64));
    }
    let (params, workgroups) = range(0, e)?;
    Ok(KernelPlan {
        chunks: Some(super::Chunking { rows: e, row_bytes, plan: std::sync::Arc::new(range) }),
        key: key(bias, v, er as u32),
        params,
        bindings,
        workgroups,
    })
}

pub fn reference(x: &[&[f64]], s: &[&[usize]], act: Activation, bias: bool) -> Vec<f64> {
    let (e, r, k, n) = (s[0][0], s[0][1], s[0][2], s[1][2]);
    let mut o = vec![0.0; e * r * n];
    for ex in 0..e {
        for row in 0..r {
            for col in 0..n {
                let mut acc = if bias { x[2][ex * n + col] } else { 0.0 };
                for kk in 0..k {
                    acc += x[0][(ex * r + row) * k + kk] * x[1][(ex * k + kk) * n + col];
                }
                o[(ex * r + row) * n + col] = act.apply(acc);
            }
        }
    }
    o
}

/// inputs: a [E, R, K], w [E, K, N], bias [E, N] if `bias` -> [E, R, N].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExpertMatMul {
    pub act: Activation,
    pub bias: bool,
}

variant_enum!(ExpertMatmulVariant {
    /// Both operands through rgba textures (CPU adapters, when the weights have one).
    Tex = "tex",
    /// `tex` with A texels shared across 8 lanes by subgroup broadcasts (subgroups of at
    /// least 8 lanes).
    TexSg = "tex_sg",
    /// Storage buffers.
    Buffers = "buffers",
    /// matmul's 64x64 shared-memory tile per expert, vec4 loads (GPUs; K and N multiples
    /// of 4, f32 weights).
    Tiled4 = "tiled4",
});

impl OpDef for ExpertMatMul {
    const NAME: &'static str = "expert_matmul";
    type Params = ExpertMatmulParams;
    type Variant = ExpertMatmulVariant;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        expect_inputs(s, 2 + self.bias as usize)?;
        infer(s, self.bias)
    }

    fn candidates(&self, s: &[&[usize]], ctx: &PlanCtx) -> Vec<ExpertMatmulVariant> {
        let (e, r, k, n) = (s[0][0], s[0][1], s[0][2], s[1][2]);
        let max_tex = ctx.max_texture_dim as usize;
        let tex = ctx.caps.cpu && ctx.w_texture && k % 4 == 0 && n % 4 == 0 && k / 4 <= max_tex && e * r <= max_tex;
        use ExpertMatmulVariant::*;
        let sg = tex && ctx.caps.subgroup && ctx.caps.subgroup_min_size >= 8;
        let tiled4 = k % 4 == 0 && n % 4 == 0 && ctx.input_dtypes.get(1) != Some(&crate::graph::DType::F16);
        let mut v = match (sg, tex) {
            (true, _) => vec![TexSg, Tex, Buffers],
            (false, true) => vec![Tex, Buffers],
            _ => vec![Buffers],
        };
        if tiled4 {
            // GPUs: first; CPU adapters: last (op tests force it).
            if ctx.caps.cpu { v.push(Tiled4) } else { v.insert(0, Tiled4) }
        }
        v
    }

    fn plan(&self, s: &[&[usize]], _out: &[usize], _ctx: &PlanCtx, v: ExpertMatmulVariant) -> Result<KernelPlan, String> {
        plan(s, self.act, self.bias, v)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], _out: &[usize]) -> Vec<f64> {
        reference(x, s, self.act, self.bias)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        mul(&[2, s[0][2] as u64, out.iter().fold(1u64, |a, &b| a.saturating_mul(b as u64))])
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }

    fn input_form(&self, input: usize) -> InputForm {
        if input == 1 { InputForm::StackedMatrices } else { InputForm::Plain }
    }

    fn texture_inputs(&self, v: ExpertMatmulVariant) -> &'static [usize] {
        if matches!(v, ExpertMatmulVariant::Tex | ExpertMatmulVariant::TexSg) { &[0, 1] } else { &[] }
    }
}
