//! Open-vocabulary detection with an OWL-ViT / OWLv2 model file: tokenize the text
//! queries, preprocess the image as the transformers processor does, run, and
//! post-process as `post_process_object_detection` does (score = sigmoid of the best
//! query's logit, label = that query, boxes to pixel corners of the original image),
//! then per-label non-maximum suppression.
use crate::tokenizer::ClipTokenizer;
use crate::{Error, Model, Result};
use image::RgbImage;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use wgvision_graphs::ModelConfig;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Detection {
    /// Index of the query that scored highest.
    pub query: usize,
    pub label: String,
    pub score: f32,
    /// [x0, y0, x1, y1] in pixels of the original image.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

pub struct DetectOptions {
    pub threshold: f32,
    pub nms_iou: f32,
}

/// Decode an image file to RGB.
pub fn open_rgb(path: &Path) -> Result<RgbImage> {
    crate::image_input::decode_rgb(path)
}

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

/// Generalized IoU: IoU minus the enclosing box's share not covered by the union.
fn generalized_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let union = area(a) + area(b) - iw * ih;
    let enclosing = (a[2].max(b[2]) - a[0].min(b[0])) * (a[3].max(b[3]) - a[1].min(b[1]));
    iou(a, b) - (enclosing - union) / enclosing.max(1e-12)
}

/// A named model output.
fn output<'t>(out: &'t [crate::Tensor], name: &str) -> Result<&'t crate::Tensor> {
    out.iter().find(|t| t.name == name).ok_or_else(|| Error::Input { tensor: name.into(), message: "missing model output".into() })
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    inter / (area(a) + area(b) - inter).max(1e-12)
}

/// Greedy per-label NMS, highest score first.
pub fn nms(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::new();
    for d in dets {
        if keep.iter().all(|k| k.query != d.query || iou(&k.bbox, &d.bbox) <= iou_threshold) {
            keep.push(d);
        }
    }
    keep
}

/// A query set's (ids [Q, L] as f32, query embeddings [Q, D]).
type Embedded = (Vec<f32>, Vec<f32>);

/// A detector that embeds each query set once (the text tower) and reuses the
/// embeddings for every image detected with the same queries.
pub struct Detector<'a> {
    model: &'a Model,
    /// Needed for text queries only.
    tok: Option<&'a ClipTokenizer>,
    cache: Mutex<HashMap<Vec<String>, Arc<Embedded>>>,
    text_runs: AtomicUsize,
}

impl<'a> Detector<'a> {
    pub fn new(model: &'a Model, tok: Option<&'a ClipTokenizer>) -> Result<Detector<'a>> {
        if !matches!(model.config, ModelConfig::Owl(_)) {
            return Err(Error::Input { tensor: "model".into(), message: "text queries need an OWL-ViT / OWLv2 model".into() });
        }
        Ok(Detector { model, tok, cache: Mutex::new(HashMap::new()), text_runs: AtomicUsize::new(0) })
    }

    /// How many times the text tower has run.
    pub fn text_runs(&self) -> usize {
        self.text_runs.load(Ordering::Relaxed)
    }

    /// (ids, embeddings) of a query set, from the cache or one text-tower run.
    fn embed(&self, queries: &[String], l: usize) -> Result<Arc<Embedded>> {
        if let Some(hit) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(queries) {
            return Ok(hit.clone());
        }
        let tok = self.tok.ok_or_else(|| Error::Input { tensor: "query".into(), message: "text queries need a tokenizer".into() })?;
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for q in queries {
            let (i, m) = tok.encode_padded(q, l);
            ids.extend(i.iter().map(|&v| v as f32));
            mask.extend(m.iter().map(|&v| v as f32));
        }
        let qn = queries.len();
        let out = self.model.run_inputs(&[("input_ids", &ids, &[qn, l]), ("attention_mask", &mask, &[qn, l])])?;
        self.text_runs.fetch_add(1, Ordering::Relaxed);
        let embeds = out.into_iter().find(|t| t.name == "query_embeds").map(|t| t.data).unwrap_or_default();
        let entry = Arc::new((ids, embeds));
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(queries.to_vec(), entry.clone());
        Ok(entry)
    }

    fn config(&self) -> &wgvision_graphs::owl::OwlConfig {
        match &self.model.config {
            ModelConfig::Owl(c) => c,
            _ => unreachable!("checked in new"),
        }
    }

    /// The image tower and heads on one preprocessed image [1, 3, S, S] with query
    /// embeddings [Q, D] (`ids` [Q, L] only mark padding queries).
    pub fn run_image(&self, pixels: &[f32], ids: &[f32], embeds: &[f32]) -> Result<Vec<crate::Tensor>> {
        let cfg = self.config();
        let (s, l, d) = (cfg.image_size, cfg.max_position_embeddings, cfg.projection_dim);
        let qn = embeds.len() / d.max(1);
        self.model.run_inputs(&[("pixel_values", pixels, &[1, 3, s, s]), ("input_ids", ids, &[qn, l]), ("query_embeds", embeds, &[qn, d])])
    }

    /// transformers' `embed_image_query`: among the query image's predicted boxes whose
    /// IoU with the whole image is within 80% of the best (generalized IoU if none
    /// overlaps), the class embedding least similar to the image's mean embedding.
    pub fn image_query_embedding(&self, query_pixels: &[f32]) -> Result<Vec<f32>> {
        let cfg = self.config();
        let (l, d) = (cfg.max_position_embeddings, cfg.projection_dim);
        let mut ids = vec![0.0; l];
        ids[0] = 1.0;
        let out = self.run_image(query_pixels, &ids, &vec![0.0; d])?;
        let (emb, boxes) = (output(&out, "class_embeds")?, output(&out, "pred_boxes")?);
        let p = cfg.patches();
        let corners: Vec<[f32; 4]> = boxes.data.chunks_exact(4).map(|b| [b[0] - b[2] / 2.0, b[1] - b[3] / 2.0, b[0] + b[2] / 2.0, b[1] + b[3] / 2.0]).collect();
        let whole = [0.0, 0.0, 1.0, 1.0];
        let mut ious: Vec<f32> = corners.iter().map(|c| iou(&whole, c)).collect();
        if ious.iter().all(|&v| v == 0.0) {
            ious = corners.iter().map(|c| generalized_iou(&whole, c)).collect();
        }
        let best = ious.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let selected: Vec<usize> = (0..p).filter(|&i| ious[i] >= best * 0.8).collect();
        if selected.is_empty() {
            return Err(Error::Input { tensor: "query image".into(), message: "no predicted box covers the query image".into() });
        }
        let dt = emb.data.len() / p;
        let mean: Vec<f32> = (0..dt).map(|c| (0..p).map(|i| emb.data[i * dt + c]).sum::<f32>() / p as f32).collect();
        let sim = |i: usize| -> f32 { (0..dt).map(|c| mean[c] * emb.data[i * dt + c]).sum() };
        let pick = selected.iter().copied().fold(selected[0], |b, i| if sim(i) < sim(b) { i } else { b });
        Ok(emb.data[pick * dt..(pick + 1) * dt].to_vec())
    }

    /// Image-guided detection: boxes in `img` that look like the object in `query_img`.
    pub fn detect_image_query(&self, img: &RgbImage, query_img: &RgbImage, opts: &DetectOptions) -> Result<Vec<Detection>> {
        let q = self.image_query_embedding(&owl_pixels(query_img, &self.model.config)?)?;
        let mut ids = vec![0.0; self.config().max_position_embeddings];
        ids[0] = 1.0;
        let out = self.run_image(&owl_pixels(img, &self.model.config)?, &ids, &q)?;
        self.post_process(&out, img, &["query image".to_string()], opts)
    }

    /// Detect `queries` in one image.
    pub fn detect(&self, img: &RgbImage, queries: &[String], opts: &DetectOptions) -> Result<Vec<Detection>> {
        if queries.is_empty() {
            return Err(Error::Input { tensor: "query".into(), message: "give at least one --query".into() });
        }
        let text = self.embed(queries, self.config().max_position_embeddings)?;
        let out = self.run_image(&owl_pixels(img, &self.model.config)?, &text.0, &text.1)?;
        self.post_process(&out, img, queries, opts)
    }

    /// transformers' post-processing (best query per patch, sigmoid score, boxes to
    /// pixel corners), threshold, per-label NMS.
    fn post_process(&self, out: &[crate::Tensor], img: &RgbImage, queries: &[String], opts: &DetectOptions) -> Result<Vec<Detection>> {
        let cfg = self.config();
        let qn = queries.len();
        let (logits, boxes) = (output(out, "logits")?, output(out, "pred_boxes")?);
        let (w, h) = img.dimensions();
        // OWLv2 boxes are relative to the padded square.
        let (sx, sy) = if cfg.v2 { (w.max(h) as f32, w.max(h) as f32) } else { (w as f32, h as f32) };
        let mut dets = Vec::new();
        for p in 0..cfg.patches() {
            let row = &logits.data[p * qn..(p + 1) * qn];
            let (best, &logit) = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap_or((0, &f32::MIN));
            let score = 1.0 / (1.0 + (-logit).exp());
            if score < opts.threshold {
                continue;
            }
            let b = &boxes.data[p * 4..p * 4 + 4];
            let bbox = [(b[0] - b[2] / 2.0) * sx, (b[1] - b[3] / 2.0) * sy, (b[0] + b[2] / 2.0) * sx, (b[1] + b[3] / 2.0) * sy];
            dets.push(Detection { query: best, label: queries[best].clone(), score, bbox });
        }
        Ok(nms(dets, opts.nms_iou))
    }
}

/// 5x7 bitmap glyphs (rows top to bottom, 5 bits each) for labels.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [30, 17, 17, 17, 17, 17, 30],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 10, 4, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        ' ' => [0; 7],
        _ => [31, 17, 17, 17, 17, 17, 31],
    }
}

/// The image with each detection's box and "label score" drawn in.
pub fn draw(img: &RgbImage, dets: &[Detection]) -> RgbImage {
    const COLORS: [[u8; 3]; 6] = [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [240, 50, 230]];
    let mut out = img.clone();
    let (w, h) = out.dimensions();
    let put = |out: &mut RgbImage, x: i64, y: i64, c: [u8; 3]| {
        if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
            out.put_pixel(x as u32, y as u32, image::Rgb(c));
        }
    };
    for d in dets {
        let c = COLORS[d.query % COLORS.len()];
        let [x0, y0, x1, y1] = d.bbox.map(|v| v.round() as i64);
        for t in 0..2 {
            for x in x0..=x1 {
                put(&mut out, x, y0 + t, c);
                put(&mut out, x, y1 - t, c);
            }
            for y in y0..=y1 {
                put(&mut out, x0 + t, y, c);
                put(&mut out, x1 - t, y, c);
            }
        }
        let text = format!("{} {:.2}", d.label, d.score);
        let (tx, ty) = (x0 + 3, (y0 - 10).max(0));
        for (i, ch) in text.chars().enumerate() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (16 >> col) != 0 {
                        put(&mut out, tx + i as i64 * 6 + col, ty + row as i64, c);
                    }
                }
            }
        }
    }
    out
}
