//! Image file -> model input, as timm's eval transform does it: resize the shorter side
//! to input/crop_pct (bicubic), or with crop_mode "squash" both sides, center crop, scale
//! to [0,1], normalize by mean/std.
use crate::{Error, Result};
use image::imageops::FilterType;
use std::path::Path;
use wgvision_graphs::Preprocess;

/// Largest decoded image side and pixel count accepted (2^28 RGBA pixels are 1 GiB);
/// larger files are refused from their header, before any pixel is allocated.
pub const MAX_IMAGE_SIDE: u32 = 65535;
pub const MAX_IMAGE_PIXELS: u64 = 1 << 28;

/// Decode a PNG or JPEG file to RGB, bounded in size. A JPEG whose data ends before its
/// end-of-image marker is refused, as PIL refuses a truncated file (the decoder would
/// otherwise fill the missing rows with grey).
pub fn decode_rgb(path: &Path) -> Result<image::RgbImage> {
    let bytes = wgvision_weights::st::read_file(path).map_err(|e| Error::Image { path: path.display().to_string(), message: e.to_string() })?;
    decode_rgb_bytes(&bytes, &path.display().to_string())
}

/// `decode_rgb` on bytes already read (`what` names them in errors).
pub fn decode_rgb_bytes(bytes: &[u8], what: &str) -> Result<image::RgbImage> {
    let err = |message: String| Error::Image { path: what.to_string(), message };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| err(e.to_string()))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_has_end(bytes) {
        return Err(err("the JPEG data is truncated (no end-of-image marker)".into()));
    }
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .and_then(|r| r.into_dimensions().map_err(std::io::Error::other))
        .map_err(|e| err(e.to_string()))?;
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || w as u64 * h as u64 > MAX_IMAGE_PIXELS {
        return Err(err(format!("{w}x{h} pixels is larger than wgvision decodes ({MAX_IMAGE_SIDE} per side, {MAX_IMAGE_PIXELS} pixels)")));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 8);
    reader.limits(limits);
    Ok(reader.decode().map_err(|e| err(e.to_string()))?.to_rgb8())
}

/// The model's input size bounds the resized image and the f32 pixels (4 + 12 bytes per
/// pixel): refused past the host-memory budget before allocating.
fn check_pixels(path: &Path, bytes: u64) -> Result<()> {
    wgvision_weights::st::check_host_bytes(&format!("image {} at the model's input size", path.display()), Some(bytes))
        .map(|_| ())
        .map_err(|e| Error::Image { path: path.display().to_string(), message: e.to_string() })
}

/// A JPEG ends with the EOI marker FF D9 (trailing padding after it is tolerated).
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Pixels [1, 3, H, W] for one image file.
pub fn load_image(path: &Path, pre: &Preprocess) -> Result<Vec<f32>> {
    let err = |message: String| Error::Image { path: path.display().to_string(), message };
    let img = decode_rgb(path)?;
    let [c, h, w] = pre.input_size;
    if c != 3 {
        return Err(err(format!("the model takes {c} channels; image input needs 3")));
    }
    let filter = match pre.interpolation.as_str() {
        "bilinear" => FilterType::Triangle,
        "nearest" => FilterType::Nearest,
        _ => FilterType::CatmullRom,
    };
    check_pixels(path, w as u64 * h as u64 * 16)?;
    let resized = if pre.crop_mode == "squash" {
        // timm's "squash": both sides to input / crop_pct (the aspect ratio is not kept),
        // then a center crop of the input size (none at crop_pct 1).
        let (sw, sh) = ((w as f32 / pre.crop_pct).floor().max(w as f32) as u32, (h as f32 / pre.crop_pct).floor().max(h as f32) as u32);
        let r = image::imageops::resize(&img, sw, sh, filter);
        image::imageops::crop_imm(&r, (sw - w as u32) / 2, (sh - h as u32) / 2, w as u32, h as u32).to_image()
    } else {
        let scale = (h.max(w) as f32 / pre.crop_pct).floor() as u32;
        let (iw, ih) = img.dimensions();
        let (nw, nh) = if iw <= ih {
            (scale, (scale as u64 * ih as u64 / iw.max(1) as u64) as u32)
        } else {
            ((scale as u64 * iw as u64 / ih.max(1) as u64) as u32, scale)
        };
        let (nw, nh) = (nw.max(w as u32), nh.max(h as u32));
        // Along an axis the resize stretches past twice the crop (a 1 x 60000 strip), only
        // the source rows or columns under the crop window, plus the filter's reach, are
        // resized: memory stays bounded by the crop, not by the aspect ratio.
        let (img, nw, nh, x0, y0) = crop_source(img, (nw, nh), (w as u32, h as u32));
        let r = image::imageops::resize(&img, nw, nh, filter);
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

/// For a resize of `img` to `size` followed by a centred `crop`: along each axis where the
/// resized length exceeds twice the crop, keep only the source span under the crop window
/// (with a margin for the filter), and return that source, its resized size and the crop
/// offset inside it. Other axes are left whole, so ordinary images resize exactly as before.
fn crop_source(img: image::RgbImage, size: (u32, u32), crop: (u32, u32)) -> (image::RgbImage, u32, u32, u32, u32) {
    let (iw, ih) = img.dimensions();
    // (source start, source len, resized len, crop offset) for one axis.
    let axis = |src: u32, dst: u32, c: u32| -> (u32, u32, u32, u32) {
        let off = (dst - c) / 2;
        if dst <= 2 * c.max(1) || src < 3 {
            return (0, src, dst, off);
        }
        let scale = dst as f64 / src as f64; // resized px per source px
        let margin = 4.0 / scale.min(1.0) + 2.0;
        let s0 = ((off as f64 / scale) - margin).floor().max(0.0) as u32;
        let s1 = (((off + c) as f64 / scale) + margin).ceil().min(src as f64) as u32;
        let d0 = (s0 as f64 * scale).round() as u32;
        let len = ((s1 - s0) as f64 * scale).round() as u32;
        (s0, s1 - s0, len.max(c), off.saturating_sub(d0).min(len.max(c) - c))
    };
    let (sx, sw, nw, x0) = axis(iw, size.0, crop.0);
    let (sy, sh, nh, y0) = axis(ih, size.1, crop.1);
    if (sw, sh) == (iw, ih) {
        return (img, nw, nh, x0, y0);
    }
    (image::imageops::crop_imm(&img, sx, sy, sw, sh).to_image(), nw, nh, x0, y0)
}
