//! Copy of an activation [.., K] (K a multiple of 4) into an rgba32float storage texture
//! [K/4 x M], for kernels that read it through texel loads (CPU adapters, where a texel
//! load is one vector load). The lowering pass inserts it; graphs never name it.
use super::{expect_inputs, u32_of, Arg, Chunking, KernelPlan, OpDef, PlanCtx, Single};
use crate::kernels::KernelKey;

uniform!("to_texture.wgsl", ToTextureParams { rows: u32, k4: u32, row0: u32, _pad0: u32 });

/// inputs: x [.., K] -> the same values as a texture of width K/4 and one row per row of x.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToTexture {}

fn key() -> KernelKey {
    KernelKey { shader: "to_texture.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

impl OpDef for ToTexture {
    const NAME: &'static str = "to_texture";
    type Params = ToTextureParams;
    type Variant = Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        expect_inputs(s, 1)?;
        match s[0].last() {
            Some(k) if k % 4 == 0 && *k > 0 => Ok(s[0].to_vec()),
            _ => Err(format!("to_texture needs [.., K] with K a multiple of 4, got {:?}", s[0])),
        }
    }

    fn plan(&self, s: &[&[usize]], _out: &[usize], _ctx: &PlanCtx, _v: Single) -> Result<KernelPlan, String> {
        let k = s[0][s[0].len() - 1];
        let m = s[0].iter().product::<usize>() / k;
        let k4 = u32_of(k / 4, "texture width")?;
        let params = move |row0: usize, rows: usize| -> Result<(Vec<u8>, u64), String> {
            let p = ToTextureParams { rows: u32_of(rows, "rows")?, k4, row0: u32_of(row0, "row")?, ..Default::default() };
            Ok((bytemuck::bytes_of(&p).to_vec(), (rows * (k / 4)).div_ceil(64) as u64))
        };
        let (whole, workgroups) = params(0, m)?;
        // Rows are independent: the input binds by row ranges, the texture whole.
        Ok(KernelPlan {
            key: key(),
            params: whole,
            bindings: vec![(1, Arg::Input(0)), (2, Arg::OutputTexture)],
            workgroups,
            chunks: Some(Chunking { rows: m, row_bytes: vec![(1, 4 * k as u64)], plan: std::sync::Arc::new(params) }),
        })
    }

    fn reference(&self, x: &[&[f64]], _s: &[&[usize]], _out: &[usize]) -> Vec<f64> {
        x[0].to_vec()
    }

    fn flops(&self, _s: &[&[usize]], _out: &[usize]) -> u64 {
        0
    }

    fn shader_variants() -> Vec<KernelKey> {
        vec![key()]
    }
}
