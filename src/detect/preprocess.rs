//! OWL-ViT / OWLv2 input preprocessing: an RGB image -> pixels [1, 3, S, S] as
//! transformers' OwlViTImageProcessor / Owlv2ImageProcessor make them.
use crate::Result;
use image::RgbImage;
use wgvision_graphs::ModelConfig;

/// Pixels [1, 3, S, S] as transformers' processors make them. OWL-ViT: resize to S x S
/// (bicubic). OWLv2 (Owlv2ImageProcessor): scale to [0, 1], pad to a square at the
/// bottom/right with 0.5, Gaussian anti-aliasing (sigma = (factor - 1) / 2), bilinear
/// zoom (scipy's `ndi.zoom`, grid mode, mirror edges), clip to the padded image's range.
pub fn owl_pixels(img: &RgbImage, model: &ModelConfig) -> Result<Vec<f32>> {
    let pre = model.preprocess();
    let [_, s, _] = pre.input_size;
    let mut out = vec![0.0f32; 3 * s * s];
    if pre.crop_mode == "pad_square" {
        for ch in 0..3 {
            let plane = owlv2_plane(img, ch, s);
            for (o, v) in out[ch * s * s..(ch + 1) * s * s].iter_mut().zip(plane) {
                *o = (v as f32 - pre.mean[ch]) / pre.std[ch];
            }
        }
        return Ok(out);
    }
    let resized = image::imageops::resize(img, s as u32, s as u32, image::imageops::FilterType::CatmullRom);
    for (x, y, px) in resized.enumerate_pixels() {
        for ch in 0..3 {
            out[(ch * s + y as usize) * s + x as usize] = (px[ch] as f32 / 255.0 - pre.mean[ch]) / pre.std[ch];
        }
    }
    Ok(out)
}

/// scipy.ndimage's "mirror" boundary: reflect about the edge samples (d c b | a b c d | c b a).
fn mirror(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - m }) as usize
}

/// One channel of Owlv2ImageProcessor's pad + resize, in [0, 1] units.
fn owlv2_plane(img: &RgbImage, ch: usize, s: usize) -> Vec<f64> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let side = w.max(h);
    let mut sq = vec![0.5f64; side * side];
    for (x, y, px) in img.enumerate_pixels() {
        sq[y as usize * side + x as usize] = px[ch] as f64 / 255.0;
    }
    // The clip range is the whole padded image's (all channels), as _clip_warp_output.
    let pad = if w == h { None } else { Some(0.5) };
    let (lo, hi) = img.pixels().flat_map(|p| p.0).map(|v| v as f64 / 255.0).chain(pad).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let factor = side as f64 / s as f64;
    let sigma = ((factor - 1.0) / 2.0).max(0.0);
    // Separable Gaussian, truncated at 4 sigma, as ndi.gaussian_filter.
    if sigma > 0.0 {
        let r = (4.0 * sigma + 0.5) as isize;
        let k: Vec<f64> = (-r..=r).map(|x| (-(x * x) as f64 / (2.0 * sigma * sigma)).exp()).collect();
        let sum: f64 = k.iter().sum();
        let k: Vec<f64> = k.iter().map(|v| v / sum).collect();
        let blur = |src: &[f64], along_x: bool| -> Vec<f64> {
            let mut dst = vec![0.0; side * side];
            for y in 0..side {
                for x in 0..side {
                    dst[y * side + x] = (-r..=r)
                        .map(|d| {
                            let (sx, sy) = if along_x { (mirror(x as isize + d, side), y) } else { (x, mirror(y as isize + d, side)) };
                            k[(d + r) as usize] * src[sy * side + sx]
                        })
                        .sum();
                }
            }
            dst
        };
        sq = blur(&blur(&sq, true), false);
    }
    // Bilinear zoom, grid mode: output centre i samples input coordinate (i + 0.5) * f - 0.5.
    let sample = |i: usize| -> (usize, usize, f64) {
        let c = (i as f64 + 0.5) * factor - 0.5;
        let f = c.floor();
        (mirror(f as isize, side), mirror(f as isize + 1, side), c - f)
    };
    let mut plane = Vec::with_capacity(s * s);
    for y in 0..s {
        let (y0, y1, ty) = sample(y);
        for x in 0..s {
            let (x0, x1, tx) = sample(x);
            let top = sq[y0 * side + x0] * (1.0 - tx) + sq[y0 * side + x1] * tx;
            let bottom = sq[y1 * side + x0] * (1.0 - tx) + sq[y1 * side + x1] * tx;
            plane.push((top * (1.0 - ty) + bottom * ty).clamp(lo, hi));
        }
    }
    plane
}
