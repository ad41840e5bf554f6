//! Image file -> model input, as timm's eval transform does it: resize the shorter side
//! to input/crop_pct (bicubic), center crop, scale to [0,1], normalize by mean/std.
use crate::{Error, Result};
use image::imageops::FilterType;
use std::path::Path;
use wgvision_graphs::Preprocess;

/// Pixels [1, 3, H, W] for one image file.
pub fn load_image(path: &Path, pre: &Preprocess) -> Result<Vec<f32>> {
    let err = |message: String| Error::Image { path: path.display().to_string(), message };
    let img = image::ImageReader::open(path)
        .map_err(|e| err(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?
        .decode()
        .map_err(|e| err(e.to_string()))?
        .to_rgb8();
    let [c, h, w] = pre.input_size;
    if c != 3 {
        return Err(err(format!("the model takes {c} channels; image input needs 3")));
    }
    let filter = match pre.interpolation.as_str() {
        "bilinear" => FilterType::Triangle,
        "nearest" => FilterType::Nearest,
        _ => FilterType::CatmullRom,
    };
    let resized = if pre.crop_mode == "squash" {
        image::imageops::resize(&img, w as u32, h as u32, filter)
    } else {
        let scale = (h.max(w) as f32 / pre.crop_pct).floor() as u32;
        let (iw, ih) = img.dimensions();
        let (nw, nh) = if iw <= ih {
            (scale, (scale as u64 * ih as u64 / iw.max(1) as u64) as u32)
        } else {
            ((scale as u64 * iw as u64 / ih.max(1) as u64) as u32, scale)
        };
        let r = image::imageops::resize(&img, nw.max(w as u32), nh.max(h as u32), filter);
        let (rw, rh) = r.dimensions();
        let x0 = (rw - w as u32) / 2;
        let y0 = (rh - h as u32) / 2;
        image::imageops::crop_imm(&r, x0, y0, w as u32, h as u32).to_image()
    };
    let mut out = vec![0.0f32; 3 * h * w];
    for (x, y, px) in resized.enumerate_pixels() {
        for ch in 0..3 {
            out[(ch * h + y as usize) * w + x as usize] = (px[ch] as f32 / 255.0 - pre.mean[ch]) / pre.std[ch];
        }
    }
    Ok(out)
}
