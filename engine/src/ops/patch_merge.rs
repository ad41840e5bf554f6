//! Patch merging (2x2 space-to-depth over a channels-last map, odd edges zero-padded).
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("patch_merge.wgsl", PatchMergeParams { batch: u32, height: u32, width: u32, channels: u32 });

pub fn infer(x: &[usize], map: [usize; 2]) -> Result<Vec<usize>, String> {
    let [b, t, c] = x else {
        return Err(format!("patch merge needs [B, H*W, C], got {x:?}"));
    };
    if map[0] * map[1] != *t || map.contains(&0) {
        return Err(format!("input has {t} tokens, the map is {}x{}", map[0], map[1]));
    }
    Ok(vec![*b, map[0].div_ceil(2) * map[1].div_ceil(2), 4 * c])
}

fn key() -> KernelKey {
    KernelKey { shader: "patch_merge.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(x: &[usize], out: &[usize], map: [usize; 2]) -> Result<KernelPlan, String> {
    let params = PatchMergeParams {
        batch: u32_of(x[0], "batch")?,
        height: u32_of(map[0], "height")?,
        width: u32_of(map[1], "width")?,
        channels: u32_of(x[2], "channels")?,
    };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Output)],
        workgroups: out.iter().product::<usize>().div_ceil(64) as u64,
    })
}

pub fn reference(x: &[f64], s: &[usize], map: [usize; 2]) -> Vec<f64> {
    let (b, c) = (s[0], s[2]);
    let [h, w] = map;
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    let mut out = Vec::with_capacity(b * oh * ow * 4 * c);
    for bb in 0..b {
        for oy in 0..oh {
            for ox in 0..ow {
                // x0 = [0::2, 0::2], x1 = [1::2, 0::2], x2 = [0::2, 1::2], x3 = [1::2, 1::2]
                for (dy, dx) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (y, xx) = (oy * 2 + dy, ox * 2 + dx);
                    for ch in 0..c {
                        out.push(if y < h && xx < w { x[((bb * h + y) * w + xx) * c + ch] } else { 0.0 });
                    }
                }
            }
        }
    }
    out
}

/// inputs: x [B, H*W, C] with `map` = [H, W] -> [B, ceil(H/2)*ceil(W/2), 4*C].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatchMerge { pub map: [usize; 2] }

impl super::OpDef for PatchMerge {
    const NAME: &'static str = "patch_merge";
    type Params = PatchMergeParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 1)?;
        infer(s[0], self.map)
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s[0], out, self.map)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], s[0], self.map)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
