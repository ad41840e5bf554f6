//! The Detector: runs an OWL-ViT / OWLv2 model (text tower once per query set, then the
//! image tower and heads per image) and post-processes as transformers does.
use super::boxes::{corners, generalized_iou, iou, nms, Detection};
use super::preprocess::owl_pixels;
use crate::tokenizer::ClipTokenizer;
use crate::{Error, Model, Result};
use image::RgbImage;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use wgvision_graphs::owl::OwlConfig;
use wgvision_graphs::ModelConfig;

/// Post-processing: the score threshold and the per-label NMS IoU.
pub struct DetectOptions {
    pub threshold: f32,
    pub nms_iou: f32,
}

/// A named model output.
fn output<'t>(out: &'t [crate::Tensor], name: &str) -> Result<&'t crate::Tensor> {
    out.iter().find(|t| t.name == name).ok_or_else(|| Error::Input { tensor: name.into(), message: "missing model output".into() })
}

/// A query set's (ids [Q, L] as f32, query embeddings [Q, D]).
type Embedded = (Vec<f32>, Vec<f32>);

/// A detector that embeds each query set once (the text tower) and reuses the
/// embeddings for every image detected with the same queries.
pub struct Detector<'a> {
    model: &'a Model,
    cfg: &'a OwlConfig,
    /// Needed for text queries only.
    tok: Option<&'a ClipTokenizer>,
    cache: Mutex<HashMap<Vec<String>, Arc<Embedded>>>,
    text_runs: AtomicUsize,
}

impl<'a> Detector<'a> {
    pub fn new(model: &'a Model, tok: Option<&'a ClipTokenizer>) -> Result<Detector<'a>> {
        let ModelConfig::Owl(cfg) = &model.config else {
            return Err(Error::Input { tensor: "model".into(), message: "text queries need an OWL-ViT / OWLv2 model".into() });
        };
        Ok(Detector { model, cfg, tok, cache: Mutex::new(HashMap::new()), text_runs: AtomicUsize::new(0) })
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

    /// The image tower and heads on one preprocessed image [1, 3, S, S] with query
    /// embeddings [Q, D] (`ids` [Q, L] only mark padding queries).
    pub fn run_image(&self, pixels: &[f32], ids: &[f32], embeds: &[f32]) -> Result<Vec<crate::Tensor>> {
        let cfg = self.cfg;
        let (s, l, d) = (cfg.image_size, cfg.max_position_embeddings, cfg.projection_dim);
        let qn = embeds.len() / d.max(1);
        self.model.run_inputs(&[("pixel_values", pixels, &[1, 3, s, s]), ("input_ids", ids, &[qn, l]), ("query_embeds", embeds, &[qn, d])])
    }

    /// transformers' `embed_image_query`: among the query image's predicted boxes whose
    /// IoU with the whole image is within 80% of the best (generalized IoU if none
    /// overlaps), the class embedding least similar to the image's mean embedding.
    pub fn image_query_embedding(&self, query_pixels: &[f32]) -> Result<Vec<f32>> {
        let cfg = self.cfg;
        let (l, d) = (cfg.max_position_embeddings, cfg.projection_dim);
        let mut ids = vec![0.0; l];
        ids[0] = 1.0;
        let out = self.run_image(query_pixels, &ids, &vec![0.0; d])?;
        let (emb, boxes) = (output(&out, "class_embeds")?, output(&out, "pred_boxes")?);
        let p = cfg.patches();
        let boxes: Vec<[f32; 4]> = boxes.data.chunks_exact(4).map(|b| corners(b, (1.0, 1.0))).collect();
        let whole = [0.0, 0.0, 1.0, 1.0];
        let mut ious: Vec<f32> = boxes.iter().map(|c| iou(&whole, c)).collect();
        if ious.iter().all(|&v| v == 0.0) {
            ious = boxes.iter().map(|c| generalized_iou(&whole, c)).collect();
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
        let mut ids = vec![0.0; self.cfg.max_position_embeddings];
        ids[0] = 1.0;
        let out = self.run_image(&owl_pixels(img, &self.model.config)?, &ids, &q)?;
        self.post_process(&out, img, &["query image".to_string()], opts)
    }

    /// Detect `queries` in one image.
    pub fn detect(&self, img: &RgbImage, queries: &[String], opts: &DetectOptions) -> Result<Vec<Detection>> {
        if queries.is_empty() {
            return Err(Error::Input { tensor: "query".into(), message: "give at least one --query".into() });
        }
        let text = self.embed(queries, self.cfg.max_position_embeddings)?;
        let out = self.run_image(&owl_pixels(img, &self.model.config)?, &text.0, &text.1)?;
        self.post_process(&out, img, queries, opts)
    }

    /// transformers' post-processing (best query per patch, sigmoid score, boxes to
    /// pixel corners), threshold, per-label NMS.
    fn post_process(&self, out: &[crate::Tensor], img: &RgbImage, queries: &[String], opts: &DetectOptions) -> Result<Vec<Detection>> {
        let cfg = self.cfg;
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
            let bbox = corners(&boxes.data[p * 4..p * 4 + 4], (sx, sy));
            dets.push(Detection { query: best, label: queries[best].clone(), score, bbox });
        }
        Ok(nms(dets, opts.nms_iou))
    }
}
