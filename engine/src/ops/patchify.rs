//! Image -> patch rows, so the patch-embedding convolution runs as a matmul.
use super::{u32_of, uniform, Arg, KernelPlan};
use crate::kernels::KernelKey;

uniform!("patchify.wgsl", PatchifyParams {
    batch: u32, channels: u32, height: u32, width: u32, patch_size: u32, grid_h: u32, grid_w: u32, _pad: u32,
});

pub fn infer(img: &[usize], patch: usize) -> Result<Vec<usize>, String> {
    let [b, c, h, w] = img else {
        return Err(format!("patchify needs an image [B, C, H, W], got {img:?}"));
    };
    if patch == 0 || *h < patch || *w < patch {
        return Err(format!("image {h}x{w} is smaller than one {patch}x{patch} patch"));
    }
    Ok(vec![*b, (h / patch) * (w / patch), c * patch * patch])
}

fn key() -> KernelKey {
    KernelKey { shader: "patchify.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(img: &[usize], out: &[usize], patch: usize) -> Result<KernelPlan, String> {
    let params = PatchifyParams {
        batch: u32_of(img[0], "batch")?,
        channels: u32_of(img[1], "channels")?,
        height: u32_of(img[2], "height")?,
        width: u32_of(img[3], "width")?,
        patch_size: u32_of(patch, "patch")?,
        grid_h: u32_of(img[2] / patch, "grid")?,
        grid_w: u32_of(img[3] / patch, "grid")?,
        _pad: 0,
    };
    let total: usize = out.iter().product();
    Ok(KernelPlan {
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Output)],
        workgroups: total.div_ceil(64) as u64,
    })
}

pub fn reference(img: &[f64], s: &[usize], out: &[usize], patch: usize) -> Vec<f64> {
    let (c, h, w) = (s[1], s[2], s[3]);
    let gw = w / patch;
    let (np, row) = (out[1], out[2]);
    let mut o = vec![0.0; out.iter().product()];
    for b in 0..s[0] {
        for p in 0..np {
            for col in 0..row {
                let (ch, ky, kx) = (col / (patch * patch), (col / patch) % patch, col % patch);
                let y = (p / gw) * patch + ky;
                let x = (p % gw) * patch + kx;
                o[(b * np + p) * row + col] = img[((b * c + ch) * h + y) * w + x];
            }
        }
    }
    o
}
