//! Image-to-column gather for a full k x k convolution (a convolutional stem): each output
//! pixel's k*k*C window becomes one row, so the convolution is the matmul that follows.
//! Reads an NCHW image or a channels-last map; rows are tap-major ((ky, kx), then channel).
use super::{u32_of, Arg, ConvGeometry, KernelPlan};
use crate::kernels::KernelKey;

uniform!("im2col.wgsl", Im2colParams {
    batch: u32, height: u32, width: u32, channels: u32, out_h: u32, out_w: u32, kernel: u32, stride: u32,
    pad_top: u32, pad_left: u32, channels_first: u32, row0: u32, rows: u32, _pad0: u32, _pad1: u32, _pad2: u32,
});

/// Input (batch, channels) for either layout, checked against the geometry.
fn batch_channels(x: &[usize], g: &ConvGeometry, channels_first: bool) -> Result<(usize, usize), String> {
    match (channels_first, x) {
        (true, [b, c, h, w]) if [*h, *w] == g.map => Ok((*b, *c)),
        (false, [b, t, c]) if *t == g.map[0] * g.map[1] => Ok((*b, *c)),
        _ => Err(format!(
            "im2col needs {} with map {:?}, got {x:?}",
            if channels_first { "[B, C, H, W]" } else { "[B, H*W, C]" },
            g.map
        )),
    }
}

pub fn infer(x: &[usize], g: &ConvGeometry, channels_first: bool) -> Result<Vec<usize>, String> {
    let (b, c) = batch_channels(x, g, channels_first)?;
    if g.kernel == 0 || g.stride == 0 || g.out.contains(&0) {
        return Err(format!("bad convolution geometry {g:?}"));
    }
    Ok(vec![b, g.out[0] * g.out[1], g.kernel * g.kernel * c])
}

variant_enum!(Im2colVariant {
    /// One invocation per output word.
    Main = "main",
    /// One per 4 columns, a vec4 store (columns a multiple of 4); can write a texture.
    Quad = "quad",
});

fn key(v: Im2colVariant, tex_out: bool) -> KernelKey {
    let (entry, mut defines) = match v {
        Im2colVariant::Main => ("main", vec![]),
        Im2colVariant::Quad => ("main_quad", vec![crate::kernels::Define::Flag("QUAD")]),
    };
    if tex_out {
        defines.push(crate::kernels::Define::Flag("TEX_OUT"));
    }
    KernelKey { shader: "im2col.wgsl", entry, defines, constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key(Im2colVariant::Main, false), key(Im2colVariant::Quad, false), key(Im2colVariant::Quad, true)]
}

pub fn plan(x: &[usize], out: &[usize], g: &ConvGeometry, channels_first: bool, v: Im2colVariant, tex_out: bool) -> Result<KernelPlan, String> {
    if tex_out && v != Im2colVariant::Quad {
        return Err("im2col writes a texture only in its quad variant".into());
    }
    let (b, c) = batch_channels(x, g, channels_first)?;
    let base = Im2colParams {
        batch: u32_of(b, "batch")?,
        height: u32_of(g.map[0], "height")?,
        width: u32_of(g.map[1], "width")?,
        channels: u32_of(c, "channels")?,
        out_h: u32_of(g.out[0], "out height")?,
        out_w: u32_of(g.out[1], "out width")?,
        kernel: u32_of(g.kernel, "kernel")?,
        stride: u32_of(g.stride, "stride")?,
        pad_top: u32_of(g.pad[0], "padding")?,
        pad_left: u32_of(g.pad[1], "padding")?,
        channels_first: channels_first as u32,
        ..Default::default()
    };
    // Output rows (one per output pixel) are independent: a range of them is written
    // through a binding at its offset, the input bound whole.
    let (rows, cols) = (out[0] * out[1], out[2]);
    u32_of(rows * cols, "im2col elements")?;
    let per_lane = if v == Im2colVariant::Quad { 4 } else { 1 };
    let range = move |row0: usize, len: usize| -> Result<(Vec<u8>, u64), String> {
        let p = Im2colParams { row0: u32_of(row0, "row")?, rows: u32_of(len, "rows")?, ..base };
        Ok((bytemuck::bytes_of(&p).to_vec(), (len * cols / per_lane).div_ceil(64) as u64))
    };
    let (params, workgroups) = range(0, rows)?;
    // A texture output is written at its pixel's row whatever the range.
    let row_bytes = if tex_out { vec![] } else { vec![(2, 4 * cols as u64)] };
    Ok(KernelPlan {
        chunks: Some(super::Chunking { rows, row_bytes, plan: std::sync::Arc::new(range) }),
        key: key(v, tex_out),
        params,
        bindings: vec![(1, Arg::Input(0)), (2, if tex_out { Arg::OutputTexture } else { Arg::Output })],
        workgroups,
    })
}

pub fn reference(x: &[f64], s: &[usize], g: &ConvGeometry, channels_first: bool) -> Vec<f64> {
    let (b, c) = if channels_first { (s[0], s[1]) } else { (s[0], s[2]) };
    let [h, w] = g.map;
    let k = g.kernel;
    let mut out = Vec::with_capacity(b * g.out[0] * g.out[1] * k * k * c);
    for bb in 0..b {
        for oy in 0..g.out[0] {
            for ox in 0..g.out[1] {
                for ky in 0..k {
                    for kx in 0..k {
                        let y = (oy * g.stride + ky) as isize - g.pad[0] as isize;
                        let xx = (ox * g.stride + kx) as isize - g.pad[1] as isize;
                        let inside = y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w;
                        for ch in 0..c {
                            out.push(match (inside, channels_first) {
                                (false, _) => 0.0,
                                (true, true) => x[((bb * c + ch) * h + y as usize) * w + xx as usize],
                                (true, false) => x[((bb * h + y as usize) * w + xx as usize) * c + ch],
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// inputs: image [B, C, H, W] (`channels_first`) or map [B, H*W, C] ->
/// [B, Ho*Wo, k*k*C], the rows of a k x k convolution as a matmul.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Im2col { pub geometry: ConvGeometry, pub channels_first: bool }

impl super::OpDef for Im2col {
    const NAME: &'static str = "im2col";
    type Params = Im2colParams;
    type Variant = Im2colVariant;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 1)?;
        infer(s[0], &self.geometry, self.channels_first)
    }

    fn candidates(&self, s: &[&[usize]], _ctx: &super::PlanCtx) -> Vec<Im2colVariant> {
        match infer(s[0], &self.geometry, self.channels_first) {
            Ok(out) if out[2].is_multiple_of(4) => vec![Im2colVariant::Quad, Im2colVariant::Main],
            _ => vec![Im2colVariant::Main],
        }
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, v: Im2colVariant) -> Result<KernelPlan, String> {
        plan(s[0], out, &self.geometry, self.channels_first, v, ctx.out_texture)
    }

    fn texture_output(&self, v: Im2colVariant) -> bool {
        v == Im2colVariant::Quad
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], s[0], &self.geometry, self.channels_first)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
