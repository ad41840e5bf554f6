//! Image -> patch rows, so the patch-embedding convolution runs as a matmul.
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("patchify.wgsl", PatchifyParams {
    batch: u32, channels: u32, height: u32, width: u32, patch_size: u32, grid_h: u32, grid_w: u32, _pad: u32,
});

/// Patch grid: whole patches only (a stride-P conv), or with `pad` the image is
/// zero-padded at the bottom/right to whole patches (as some hierarchical models' embeddings do).
fn grid(h: usize, w: usize, patch: usize, pad: bool) -> (usize, usize) {
    if pad {
        (h.div_ceil(patch), w.div_ceil(patch))
    } else {
        (h / patch, w / patch)
    }
}

pub fn infer(img: &[usize], patch: usize, pad: bool) -> Result<Vec<usize>, String> {
    let [b, c, h, w] = img else {
        return Err(format!("patchify needs an image [B, C, H, W], got {img:?}"));
    };
    if patch == 0 || (!pad && (*h < patch || *w < patch)) || *h == 0 || *w == 0 {
        return Err(format!("image {h}x{w} is smaller than one {patch}x{patch} patch"));
    }
    let (gh, gw) = grid(*h, *w, patch, pad);
    Ok(vec![*b, gh * gw, c * patch * patch])
}

fn key() -> KernelKey {
    KernelKey { shader: "patchify.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(img: &[usize], out: &[usize], patch: usize, pad: bool) -> Result<KernelPlan, String> {
    let (gh, gw) = grid(img[2], img[3], patch, pad);
    let params = PatchifyParams {
        batch: u32_of(img[0], "batch")?,
        channels: u32_of(img[1], "channels")?,
        height: u32_of(img[2], "height")?,
        width: u32_of(img[3], "width")?,
        patch_size: u32_of(patch, "patch")?,
        grid_h: u32_of(gh, "grid")?,
        grid_w: u32_of(gw, "grid")?,
        _pad: 0,
    };
    let total: usize = out.iter().product();
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Output)],
        workgroups: total.div_ceil(64) as u64,
    })
}

pub fn reference(img: &[f64], s: &[usize], out: &[usize], patch: usize, pad: bool) -> Vec<f64> {
    let (c, h, w) = (s[1], s[2], s[3]);
    let gw = grid(h, w, patch, pad).1;
    let (np, row) = (out[1], out[2]);
    let mut o = vec![0.0; out.iter().product()];
    for b in 0..s[0] {
        for p in 0..np {
            for col in 0..row {
                let (ch, ky, kx) = (col / (patch * patch), (col / patch) % patch, col % patch);
                let y = (p / gw) * patch + ky;
                let x = (p % gw) * patch + kx;
                o[(b * np + p) * row + col] = if y < h && x < w { img[((b * c + ch) * h + y) * w + x] } else { 0.0 };
            }
        }
    }
    o
}

/// inputs: image [B, C, H, W] -> [B, (H/P)*(W/P), C*P*P]; with `pad` the grid rounds
/// up and the missing pixels are zeros.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Patchify {
    pub patch: usize,
    #[serde(default)]
    pub pad: bool,
}

impl super::OpDef for Patchify {
    const NAME: &'static str = "patchify";
    type Params = PatchifyParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 1)?;
        infer(s[0], self.patch, self.pad)
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s[0], out, self.patch, self.pad)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], s[0], out, self.patch, self.pad)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
