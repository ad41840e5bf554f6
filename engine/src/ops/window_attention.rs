//! Shifted-window attention and block/grid attention: cyclic shift,
//! padding, window or grid partition and reverse done as index arithmetic inside one
//! kernel, with the relative-position bias and the shift mask added to the scores.
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::{Define, KernelKey};
use serde::{Deserialize, Serialize};

uniform!("window_attention.wgsl", WindowAttentionParams {
    batch: u32, height: u32, width: u32, heads: u32, head_dim: u32, win_h: u32, win_w: u32,
    shift_h: u32, shift_w: u32, pad_first: u32, grid: u32, scale: f32,
});

const HEAD_DIM_BUCKETS: [u32; 4] = [32, 64, 128, 256];

/// Where a map position goes: the window partition of one block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowGeometry {
    /// The map [height, width] the tokens form (row-major).
    pub map: [usize; 2],
    pub window: [usize; 2],
    /// Cyclic shift (0 for a regular block).
    pub shift: [usize; 2],
    /// Pad to whole windows before the cyclic shift instead of after it (implementations
    /// differ; the graph says which its checkpoint was trained with).
    pub pad_first: bool,
    /// Grid attention: "window" (wy, wx) gathers the positions
    /// (ty * H/wh + wy, tx * W/ww + wx), a dilated grid over the whole map, instead of a
    /// contiguous block. Needs no shift and a map divisible by the grid.
    #[serde(default)]
    pub grid: bool,
}

impl WindowGeometry {
    pub fn tokens(&self) -> usize {
        self.window[0] * self.window[1]
    }

    fn padded(&self) -> [usize; 2] {
        [self.map[0].div_ceil(self.window[0]) * self.window[0], self.map[1].div_ceil(self.window[1]) * self.window[1]]
    }
}

pub fn infer(s: &[&[usize]], heads: usize, l: &WindowGeometry, pad_bias: bool) -> Result<Vec<usize>, String> {
    let [b, t, d3] = s[0] else {
        return Err(format!("window attention needs qkv [B, H*W, 3*C], got {:?}", s[0]));
    };
    let [h, w] = l.map;
    if h * w != *t || h == 0 || w == 0 {
        return Err(format!("qkv has {t} tokens, the map is {h}x{w}"));
    }
    if l.window.contains(&0) || l.window.iter().any(|&w| w > 32) || l.shift[0] >= l.window[0] || l.shift[1] >= l.window[1] {
        return Err(format!("window {:?} with shift {:?} is not valid (window sides 1..=32, shift below the window)", l.window, l.shift));
    }
    if l.grid && (l.shift != [0, 0] || h % l.window[0] != 0 || w % l.window[1] != 0) {
        return Err(format!("grid attention needs no shift and a {h}x{w} map divisible by the grid {:?}", l.window));
    }
    if heads == 0 || d3 % (3 * heads) != 0 {
        return Err(format!("qkv width {d3} is not 3 * heads ({heads}) * head_dim"));
    }
    let hd = d3 / 3 / heads;
    if hd as u32 > HEAD_DIM_BUCKETS[3] {
        return Err(format!("head_dim {hd} exceeds the supported maximum 256"));
    }
    let n = l.tokens();
    if s[1] != [heads, n, n] {
        return Err(format!("relative-position bias must be [{heads}, {n}, {n}], got {:?}", s[1]));
    }
    if pad_bias && s[2] != [*d3] {
        return Err(format!("qkv bias must be [{d3}], got {:?}", s[2]));
    }
    Ok(vec![*b, *t, d3 / 3])
}

/// Lanes per workgroup: one per window position, rounded up to a whole 8-lane SIMD
/// chunk (lavapipe runs 8 lanes at a time; idle lanes still cost), at most 256.
fn lanes(window_tokens: usize) -> u32 {
    window_tokens.div_ceil(8).clamp(1, 32) as u32 * 8
}

variant_enum!(WindowAttentionVariant {
    /// Scalar head-dim loops, any head dim.
    Main = "main",
    /// vec4 head dims (a multiple of 4, up to 128), K/V rows shared by subgroup
    /// broadcasts across 8 queries (subgroups of at least 8 lanes).
    Sg = "sg",
});

fn key(bucket: u32, pad_bias: bool, wg: u32, v: WindowAttentionVariant, tex_out: bool) -> KernelKey {
    let mut defines = vec![Define::Value("DH", bucket)];
    if pad_bias {
        defines.push(Define::Flag("PAD_BIAS"));
    }
    if tex_out {
        defines.push(Define::Flag("TEX_OUT"));
    }
    let entry = match v {
        WindowAttentionVariant::Main => "main",
        WindowAttentionVariant::Sg => {
            defines.push(Define::Flag("SG"));
            "main_sg"
        }
    };
    KernelKey { shader: "window_attention.wgsl", entry, defines, constants: vec![("WG", wg)] }
}

pub fn variants() -> Vec<KernelKey> {
    use WindowAttentionVariant::*;
    HEAD_DIM_BUCKETS
        .iter()
        .flat_map(|&b| {
            let sg = (b <= SG_MAX_BUCKET).then_some(Sg);
            let plain = [Some(Main), sg].into_iter().flatten().flat_map(move |v| [key(b, false, 64, v, false), key(b, true, 64, v, false)]);
            plain.chain(sg.into_iter().flat_map(move |v| [key(b, false, 64, v, true), key(b, true, 64, v, true)]))
        })
        .collect()
}

const SG_MAX_BUCKET: u32 = 128;

pub fn plan(s: &[&[usize]], heads: usize, l: &WindowGeometry, pad_bias: bool, scale: f32, ctx: &super::PlanCtx, v: WindowAttentionVariant) -> Result<KernelPlan, String> {
    let (b, d) = (s[0][0], s[0][2] / 3);
    let hd = d / heads;
    let sg = v == WindowAttentionVariant::Sg;
    // Run-time loop back-edges per invocation (head-dim loops per key, see attention.rs's
    // CPU_LOOP_LIMIT): refused on CPU adapters rather than silently cut short.
    let n = l.tokens() as u64;
    // The subgroup kernel's head-dim loops unroll: it loops over blocks of 8 keys only.
    let loops = if sg { n.div_ceil(8) + 1 } else { n * (2 * hd as u64 + 2) + n.div_ceil(16) * (hd as u64 + 2) + 2 * hd as u64 + (l.window[0] + l.window[1]) as u64 };
    if ctx.caps.cpu && loops > super::attention::CPU_LOOP_LIMIT {
        return Err(format!(
            "window attention over {n}-token windows with head_dim {hd} needs {loops} loop iterations per invocation; \
             this CPU adapter's shader loops stop after {}",
            super::attention::CPU_LOOP_LIMIT
        ));
    }
    let bucket = *HEAD_DIM_BUCKETS.iter().find(|&&x| x as usize >= hd).ok_or("head_dim too large")?;
    let [hp, wp] = l.padded();
    let windows = (hp / l.window[0]) * (wp / l.window[1]);
    let params = WindowAttentionParams {
        batch: u32_of(b, "batch")?,
        height: u32_of(l.map[0], "height")?,
        width: u32_of(l.map[1], "width")?,
        heads: u32_of(heads, "heads")?,
        head_dim: u32_of(hd, "head_dim")?,
        win_h: u32_of(l.window[0], "window")?,
        win_w: u32_of(l.window[1], "window")?,
        shift_h: u32_of(l.shift[0], "shift")?,
        shift_w: u32_of(l.shift[1], "shift")?,
        pad_first: l.pad_first as u32,
        grid: l.grid as u32,
        scale,
    };
    let mut bindings = vec![(1, Arg::Input(0)), (2, Arg::Input(1))];
    if pad_bias {
        bindings.push((3, Arg::Input(2)));
    }
    if ctx.out_texture && !sg {
        return Err("window attention writes a texture only in its sg variant".into());
    }
    bindings.push((4, if ctx.out_texture { Arg::OutputTexture } else { Arg::Output }));
    let wg = lanes(l.tokens());
    Ok(KernelPlan {
        chunks: None,
        key: key(bucket, pad_bias, wg, v, ctx.out_texture),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings,
        workgroups: (b * heads * windows * l.tokens().div_ceil(wg as usize)) as u64,
    })
}

/// Float64 reference written the way the peer libraries do it: build the shifted, padded
/// map explicitly, partition, attend with bias and mask, reverse, crop.
pub fn reference(x: &[&[f64]], s: &[usize], heads: usize, l: &WindowGeometry, scale: f32) -> Vec<f64> {
    let (b, d) = (s[0], s[2] / 3);
    let hd = d / heads;
    let [h, w] = l.map;
    let [wh, ww] = l.window;
    let [hp, wp] = l.padded();
    let n = wh * ww;
    let (qkv, rel) = (x[0], x[1]);
    let zero = vec![0.0; 3 * d];
    let bias: &[f64] = x.get(2).copied().unwrap_or(&zero);
    // Shifted padded map -> source position (None = padding).
    let src = |sy: usize, sx: usize| -> Option<(usize, usize)> {
        if l.pad_first {
            let (y, x) = ((sy + l.shift[0]) % hp, (sx + l.shift[1]) % wp);
            (y < h && x < w).then_some((y, x))
        } else {
            (sy < h && sx < w).then(|| ((sy + l.shift[0]) % h, (sx + l.shift[1]) % w))
        }
    };
    // Region labels exactly as the img_mask slices assign them (python slice semantics:
    // negative bounds count from the end, `-0` is 0, so with no shift the last slice
    // covers the whole axis).
    let py = |a: Option<isize>, len: usize, dflt: usize| -> usize {
        match a {
            None => dflt,
            Some(v) if v < 0 => (len as isize + v).max(0) as usize,
            Some(v) => (v as usize).min(len),
        }
    };
    let slices = |win: usize, sh: usize| [(Some(0), Some(-(win as isize))), (Some(-(win as isize)), Some(-(sh as isize))), (Some(-(sh as isize)), None)];
    let mut lab = vec![vec![0usize; wp]; hp];
    let mut cnt = 0;
    for (h0, h1) in slices(wh, l.shift[0]) {
        for (w0, w1) in slices(ww, l.shift[1]) {
            for row in lab.iter_mut().take(py(h1, hp, hp)).skip(py(h0, hp, 0)) {
                for v in row.iter_mut().take(py(w1, wp, wp)).skip(py(w0, wp, 0)) {
                    *v = cnt;
                }
            }
            cnt += 1;
        }
    }
    let label = |sy: usize, sx: usize| lab[sy][sx];
    let shifted = l.shift != [0, 0];
    let mut out = vec![0.0; b * h * w * d];
    let val = |bb: usize, pos: Option<(usize, usize)>, which: usize, hh: usize, e: usize| match pos {
        Some((y, x)) => qkv[((bb * h + y) * w + x) * 3 * d + which * d + hh * hd + e],
        None => bias[which * d + hh * hd + e],
    };
    for bb in 0..b {
        for wy in 0..hp / wh {
            for wx in 0..wp / ww {
                let cells: Vec<(usize, usize)> = if l.grid {
                    (0..n).map(|i| ((i / ww) * (h / wh) + wy, (i % ww) * (w / ww) + wx)).collect()
                } else {
                    (0..n).map(|i| (wy * wh + i / ww, wx * ww + i % ww)).collect()
                };
                for hh in 0..heads {
                    for (i, &(qy, qx)) in cells.iter().enumerate() {
                        let Some(qpos) = src(qy, qx) else { continue };
                        let scores: Vec<f64> = cells
                            .iter()
                            .enumerate()
                            .map(|(j, &(ky, kx))| {
                                let kpos = src(ky, kx);
                                let dot: f64 = (0..hd).map(|e| val(bb, Some(qpos), 0, hh, e) * val(bb, kpos, 1, hh, e)).sum();
                                let mask = if shifted && label(qy, qx) != label(ky, kx) { -100.0 } else { 0.0 };
                                dot * scale as f64 + rel[(hh * n + i) * n + j] + mask
                            })
                            .collect();
                        let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let ex: Vec<f64> = scores.iter().map(|v| (v - mx).exp()).collect();
                        let sum: f64 = ex.iter().sum();
                        for e in 0..hd {
                            let o: f64 = cells.iter().enumerate().map(|(j, &(ky, kx))| ex[j] * val(bb, src(ky, kx), 2, hh, e)).sum();
                            out[((bb * h + qpos.0) * w + qpos.1) * d + hh * hd + e] = o / sum;
                        }
                    }
                }
            }
        }
    }
    out
}

/// inputs: qkv [B, H*W, 3*C] of the unpadded map, relative-position bias
/// [heads, N, N] (N = window area), qkv bias [3*C] if `pad_bias` (the key/value of
/// padding positions) -> [B, H*W, C].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowAttention { pub heads: usize, pub layout: WindowGeometry, pub pad_bias: bool, pub scale: f32 }

impl super::OpDef for WindowAttention {
    const NAME: &'static str = "window_attention";
    type Params = WindowAttentionParams;
    type Variant = WindowAttentionVariant;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 2 + self.pad_bias as usize)?;
        infer(s, self.heads, &self.layout, self.pad_bias)
    }

    fn candidates(&self, s: &[&[usize]], ctx: &super::PlanCtx) -> Vec<WindowAttentionVariant> {
        use WindowAttentionVariant::*;
        let hd = s[0][2] / 3 / self.heads.max(1);
        let sg = ctx.caps.subgroup && ctx.caps.subgroup_min_size >= 8 && hd.is_multiple_of(4) && hd <= SG_MAX_BUCKET as usize;
        match (sg, ctx.caps.cpu) {
            (true, true) => vec![Sg, Main],
            (true, false) => vec![Main, Sg],
            (false, _) => vec![Main],
        }
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, v: WindowAttentionVariant) -> Result<KernelPlan, String> {
        let _ = out;
        plan(s, self.heads, &self.layout, self.pad_bias, self.scale, ctx, v)
    }

    fn texture_output(&self, v: WindowAttentionVariant) -> bool {
        v == WindowAttentionVariant::Sg
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x, s[0], self.heads, &self.layout, self.scale)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        // Every position of the padded map attends to its window's N keys.
        let l = &self.layout;
        let (b, d) = (s[0][0] as u64, s[0][2] as u64 / 3);
        let padded = |i: usize| super::mul(&[l.map[i].div_ceil(l.window[i].max(1)) as u64, l.window[i] as u64]);
        super::mul(&[4, b, padded(0), padded(1), l.window[0] as u64, l.window[1] as u64, d])
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
