//! Matmul with fused epilogue: out = act(a @ w + bias) + residual, f32 or packed-f16 weights.
use super::{Variant, expect_inputs, mul, u32_of, Activation, Arg, InputForm, KernelPlan, OpDef, PlanCtx};
use serde::{Deserialize, Serialize};
use crate::graph::DType;
use crate::kernels::{Define, KernelKey};

uniform!("matmul.wgsl", MatmulParams { m: u32, n: u32, k: u32, act: u32, a_row0: u32, _pad0: u32, _pad1: u32, _pad2: u32 });

/// Rows per lane in the CPU variant.
const TM: u32 = 4;
const WG_ROWS: u32 = 64;
/// Lanes per workgroup in the cols8 CPU variant.
const COLS_WG: u32 = 16;
const VEC4_WG: u32 = 64;
const TEX_WG: u32 = 64;
/// Rows and column texels per lane of the texture kernel, without and with subgroups
/// (measured on lavapipe: 8x2 best without, 16x1 with; 64 accumulators is the most
/// before LLVM spills them).
const TEX_SHAPE: (u32, u32) = (8, 2);
const TEX_SG_SHAPE: (u32, u32) = (16, 1);

/// The tiled vec4 kernel's flags: its weight binding is f32, packed f16 (W_F16), or f16
/// with f16 arithmetic (F16_MATH).
fn tiled4_defines(f16: Option<&'static str>) -> Vec<Define> {
    let mut d = vec![Define::Flag("VEC4"), Define::Flag("TILED4")];
    d.extend(f16.map(Define::Flag));
    d
}

/// The subgroup tile kernel on storage buffers.
fn sg4_defines() -> Vec<Define> {
    let (r, c) = TEX_SG_SHAPE;
    vec![Define::Flag("TILE"), Define::Flag("VEC4"), Define::Value("TEX_ROWS", r), Define::Value("TEX_COLS4", c), Define::Flag("SG")]
}

fn tex_defines(sg: bool) -> Vec<Define> {
    let (r, c) = if sg { TEX_SG_SHAPE } else { TEX_SHAPE };
    let mut d = vec![Define::Flag("TILE"), Define::Flag("TEX"), Define::Value("TEX_ROWS", r), Define::Value("TEX_COLS4", c)];
    if sg {
        d.push(Define::Flag("SG"));
    }
    d
}

/// Lanes go in groups of 8 sharing a row block of `r` rows and 8*c column texels.
fn tex_workgroups(m: usize, n: usize, (r, c): (u32, u32)) -> usize {
    (m.div_ceil(r as usize) * (n / 4).div_ceil(8 * c as usize) * 8).div_ceil(TEX_WG as usize)
}

/// inputs: a [.., K], w [K, N], bias [N] if `bias`, residual [.., N] if `residual`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatMul {
    pub act: Activation,
    pub bias: bool,
    pub residual: bool,
}

variant_enum!(MatmulVariant {
    /// 64x64 shared-memory tile (GPUs).
    Tiled = "tiled",
    /// 64x64 shared-memory tile with vec4 loads and 4x4 register tiles (GPUs; K and N
    /// multiples of 4); f16 weights multiply in f16 where the adapter has SHADER_F16.
    Tiled4 = "tiled4",
    /// TM rows per lane, lanes over columns.
    Rows = "rows",
    /// 8 columns per lane, one row per lane.
    Cols8 = "cols8",
    /// 8 columns per lane, two rows per lane.
    Cols8x2 = "cols8x2",
    /// vec4 loads, 4x4 per lane (K and N multiples of 4, f32 weights).
    Vec4 = "vec4",
    /// A and W read as rgba textures (CPU adapters: texel loads are vector loads).
    Tex = "tex",
    /// `tex` with each A texel loaded by one lane of 8 and shared by subgroup broadcasts
    /// (adapters with subgroups of at least 8 lanes).
    TexSg = "tex_sg",
    /// `tex_sg`'s 16x4 lane tiles and subgroup-shared A rows, from storage buffers with
    /// vec4 loads (GPUs with subgroups of at least 8 lanes; K and N multiples of 4).
    Sg4 = "sg4",
});

impl OpDef for MatMul {
    const NAME: &'static str = "matmul";
    type Params = MatmulParams;
    type Variant = MatmulVariant;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        expect_inputs(s, 2 + self.bias as usize + self.residual as usize)?;
        infer(s[0], s[1], self.bias.then(|| s[2]), self.residual.then(|| s[s.len() - 1]))
    }

    fn candidates(&self, s: &[&[usize]], ctx: &PlanCtx) -> Vec<MatmulVariant> {
        use MatmulVariant::*;
        let (vec4_ok, tex_ok) = fits(s, ctx);
        let mut v = Vec::new();
        let tiled4_ok = s[0][s[0].len() - 1].is_multiple_of(4) && s[1][1].is_multiple_of(4);
        let sg4_ok = tiled4_ok && ctx.caps.subgroup && ctx.caps.subgroup_min_size >= 8;
        let m: usize = s[0][..s[0].len() - 1].iter().product();
        if ctx.caps.cpu {
            // A few rows (a classifier head on pooled features): no texture copy, no
            // 16-row tile mostly idle; vec4 measured fastest there (lavapipe, Mesa 22 and 25).
            if m < 8 && vec4_ok {
                v.push(Vec4);
            }
            v.extend((tex_ok && ctx.caps.subgroup && ctx.caps.subgroup_min_size >= 8).then_some(TexSg));
            v.extend(tex_ok.then_some(Tex));
            v.extend((vec4_ok && m >= 8).then_some(Vec4));
            v.extend([Cols8x2, Cols8, Rows, Tiled]);
            v.extend(tiled4_ok.then_some(Tiled4));
            v.extend(sg4_ok.then_some(Sg4));
        } else {
            v.extend(tiled4_ok.then_some(Tiled4));
            v.extend(sg4_ok.then_some(Sg4));
            v.extend([Tiled, Rows, Cols8, Cols8x2]);
            v.extend(vec4_ok.then_some(Vec4));
        }
        v
    }

    fn plan(&self, s: &[&[usize]], _out: &[usize], ctx: &PlanCtx, v: MatmulVariant) -> Result<KernelPlan, String> {
        plan(s, self.act, self.bias, self.residual, ctx, v)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], _out: &[usize]) -> Vec<f64> {
        reference(x, s, self.act, self.bias.then(|| x[2]), self.residual.then(|| x[x.len() - 1]))
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let k = *s[0].last().unwrap_or(&0) as u64;
        mul(&[2, k, out.iter().fold(1u64, |a, &b| a.saturating_mul(b as u64))])
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }

    fn input_form(&self, input: usize) -> InputForm {
        if input == 1 { InputForm::Matrix } else { InputForm::Plain }
    }

    fn texture_output(&self, v: MatmulVariant) -> bool {
        matches!(v, MatmulVariant::Tex | MatmulVariant::TexSg)
    }

    fn texture_inputs(&self, v: MatmulVariant) -> &'static [usize] {
        if matches!(v, MatmulVariant::Tex | MatmulVariant::TexSg) { &[0, 1] } else { &[] }
    }
}

/// (vec4 kernel fits, texture kernel fits) for these shapes on this adapter.
fn fits(s: &[&[usize]], ctx: &PlanCtx) -> (bool, bool) {
    let k = s[0][s[0].len() - 1];
    let m: usize = s[0][..s[0].len() - 1].iter().product();
    let n = s[1][1];
    let w_f16 = ctx.input_dtypes.get(1) == Some(&DType::F16);
    let vec4_ok = !w_f16 && k.is_multiple_of(4) && n.is_multiple_of(4);
    // Textures: the weight has one (made at upload for CPU adapters; f16 weights in an
    // rgba16float one that the same kernel reads widened), and A is written into one by
    // a to_texture node the lowering pass inserts.
    let max_tex = ctx.max_texture_dim as usize;
    let tex_ok = ctx.w_texture && k.is_multiple_of(4) && n.is_multiple_of(4) && k / 4 <= max_tex && m <= max_tex;
    (vec4_ok, tex_ok)
}

pub fn infer(a: &[usize], w: &[usize], bias: Option<&[usize]>, residual: Option<&[usize]>) -> Result<Vec<usize>, String> {
    let (Some(&k), [wk, n]) = (a.last(), w) else {
        return Err(format!("matmul needs a [.., K] and w [K, N], got {a:?} and {w:?}"));
    };
    if k != *wk {
        return Err(format!("inner dimensions differ: a {a:?}, w {w:?}"));
    }
    if let Some(b) = bias {
        if b != [*n] {
            return Err(format!("bias must be [{n}], got {b:?}"));
        }
    }
    let mut out = a.to_vec();
    *out.last_mut().unwrap() = *n;
    if let Some(r) = residual {
        if r != out.as_slice() {
            return Err(format!("residual must be {out:?}, got {r:?}"));
        }
    }
    Ok(out)
}

fn defines(w_f16: bool, bias: bool, residual: bool) -> Vec<Define> {
    let mut d = vec![Define::Value("TM", TM)];
    if w_f16 {
        d.push(Define::Flag("W_F16"));
    }
    if bias {
        d.push(Define::Flag("BIAS"));
    }
    if residual {
        d.push(Define::Flag("RESIDUAL"));
    }
    d
}

fn variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    for (sg, tex_out) in [(false, false), (true, false), (false, true), (true, true)] {
        for f16 in [false, true] {
            for bias in [false, true] {
                for res in [false, true] {
                    let mut d = defines(f16, bias, res);
                    d.extend(tex_defines(sg));
                    if tex_out {
                        d.push(Define::Flag("TEX_OUT"));
                    }
                    v.push(KernelKey { shader: "matmul.wgsl", entry: "main_tex", defines: d, constants: vec![] });
                }
            }
        }
    }
    for f16 in [false, true] {
        for bias in [false, true] {
            for res in [false, true] {
                let mut d = defines(f16, bias, res);
                d.extend(sg4_defines());
                v.push(KernelKey { shader: "matmul.wgsl", entry: "main_tex", defines: d, constants: vec![] });
            }
        }
    }
    for f16 in [None, Some("W_F16"), Some("F16_MATH")] {
        for bias in [false, true] {
            for res in [false, true] {
                let mut d = defines(false, bias, res);
                d.extend(tiled4_defines(f16));
                v.push(KernelKey { shader: "matmul.wgsl", entry: "main_tiled4", defines: d, constants: vec![] });
            }
        }
    }
    for entry in ["main_rows", "main_tiled", "main_cols8", "main_vec4"] {
        for f16 in [false, true] {
            for bias in [false, true] {
                for res in [false, true] {
                    if entry == "main_vec4" && f16 {
                        continue;
                    }
                    let mut d = defines(f16, bias, res);
                    if entry == "main_vec4" {
                        d.push(Define::Flag("VEC4"));
                    }
                    v.push(KernelKey { shader: "matmul.wgsl", entry, defines: d, constants: vec![] });
                }
            }
        }
    }
    v
}

fn plan(s: &[&[usize]], act: Activation, bias: bool, residual: bool, ctx: &PlanCtx, variant: MatmulVariant) -> Result<KernelPlan, String> {
    use MatmulVariant::*;
    let k = s[0][s[0].len() - 1];
    let m: usize = s[0][..s[0].len() - 1].iter().product();
    let n = s[1][1];
    let w_f16 = ctx.input_dtypes.get(1) == Some(&DType::F16);
    let mut defs = defines(w_f16, bias, residual);
    // Workgroups for `m` rows: the node may run as several row ranges (see Chunking).
    type Workgroups = fn(usize, usize) -> usize;
    let (entry, constants, wg): (&'static str, Vec<(&'static str, u32)>, Workgroups) = match variant {
        Tiled => ("main_tiled", vec![], |m, n| m.div_ceil(64) * n.div_ceil(64)),
        Rows => ("main_rows", vec![("WG", WG_ROWS)], |m, n| m.div_ceil(TM as usize) * n.div_ceil(WG_ROWS as usize)),
        Cols8 => ("main_cols8", vec![("TR", 1), ("WG", COLS_WG)], |m, n| m.div_ceil(COLS_WG as usize) * n.div_ceil(8)),
        Cols8x2 => ("main_cols8", vec![("TR", 2), ("WG", COLS_WG)], |m, n| m.div_ceil(2 * COLS_WG as usize) * n.div_ceil(8)),
        Tex => {
            defs.extend(tex_defines(false));
            ("main_tex", vec![("WG", TEX_WG)], |m, n| tex_workgroups(m, n, TEX_SHAPE))
        }
        TexSg => {
            defs.extend(tex_defines(true));
            ("main_tex", vec![("WG", TEX_WG)], |m, n| tex_workgroups(m, n, TEX_SG_SHAPE))
        }
        Tiled4 => {
            // Packed f16 weights: f16 arithmetic where the adapter has it.
            defs.retain(|d| *d != Define::Flag("W_F16"));
            defs.extend(tiled4_defines(w_f16.then_some(if ctx.caps.shader_f16 { "F16_MATH" } else { "W_F16" })));
            ("main_tiled4", vec![], |m, n| m.div_ceil(64) * (n / 4).div_ceil(16))
        }
        Sg4 => {
            defs.extend(sg4_defines());
            ("main_tex", vec![("WG", TEX_WG)], |m, n| tex_workgroups(m, n, TEX_SG_SHAPE))
        }
        Vec4 => {
            defs.push(Define::Flag("VEC4"));
            ("main_vec4", vec![("WG", VEC4_WG)], |m, n| (m.div_ceil(4) * (n / 4)).div_ceil(VEC4_WG as usize))
        }
    };
    let code = act.code();
    let tex = matches!(variant, Tex | TexSg);
    if ctx.out_texture {
        if !tex {
            return Err(format!("matmul variant {} cannot write a texture", variant.name()));
        }
        defs.push(Define::Flag("TEX_OUT"));
    }
    // A row range starts at `row0`: buffers are bound from there, A's texture is whole.
    let params_for = move |row0: usize, m: usize| -> Result<Vec<u8>, String> {
        let a_row0 = if tex { u32_of(row0, "row")? } else { 0 };
        let p = MatmulParams { m: u32_of(m, "rows")?, n: u32_of(n, "cols")?, k: u32_of(k, "depth")?, act: code, a_row0, ..Default::default() };
        Ok(bytemuck::bytes_of(&p).to_vec())
    };
    let mut bindings = if tex {
        vec![(1, Arg::InputTexture(0)), (2, Arg::InputTexture(1))]
    } else {
        vec![(1, Arg::Input(0)), (2, Arg::Input(1))]
    };
    if bias {
        bindings.push((3, Arg::Input(2)));
    }
    if residual {
        bindings.push((4, Arg::Input(2 + bias as usize)));
    }
    bindings.push((5, if ctx.out_texture { Arg::OutputTexture } else { Arg::Output }));
    // Rows are independent: A (a buffer unless read through its texture), the residual
    // and the output are row-aligned; W and the bias are bound whole.
    let (kb, nb) = (4 * k as u64, 4 * n as u64);
    let mut row_bytes = if ctx.out_texture { vec![] } else { vec![(5, nb)] };
    if !tex {
        row_bytes.push((1, kb));
    }
    if residual {
        row_bytes.push((4, nb));
    }
    let chunk_params = params_for;
    Ok(KernelPlan {
        chunks: Some(super::Chunking {
            rows: m,
            row_bytes,
            plan: std::sync::Arc::new(move |row0, len| Ok((chunk_params(row0, len)?, wg(len, n) as u64))),
        }),
        key: KernelKey { shader: "matmul.wgsl", entry, defines: defs, constants },
        params: params_for(0, m)?,
        bindings,
        workgroups: wg(m, n) as u64,
    })
}

pub fn reference(x: &[&[f64]], s: &[&[usize]], act: Activation, bias: Option<&[f64]>, residual: Option<&[f64]>) -> Vec<f64> {
    let k = s[0][s[0].len() - 1];
    let m = x[0].len() / k.max(1);
    let n = s[1][1];
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0;
            for kk in 0..k {
                acc += x[0][i * k + kk] * x[1][kk * n + j];
            }
            if let Some(b) = bias {
                acc += b[j];
            }
            let mut v = act.apply(acc);
            if let Some(r) = residual {
                v += r[i * n + j];
            }
            out[i * n + j] = v;
        }
    }
    out
}
