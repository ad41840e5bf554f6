//! Zero-shot classification with CLIP / SigLIP: each label set is embedded once (the text
//! tower) and reused for every image; the image side runs the image tower and the
//! similarity logits against the cached embeddings. Scores are transformers' usual ones:
//! a softmax over the labels for CLIP, an independent sigmoid per label for SigLIP.
use crate::sentencepiece::SentencePieceTokenizer;
use crate::tokenizer::{ClipTokenizer, TextTokenizer};
use crate::{Error, Model, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use wgvision_graphs::clip::{ClipKind, ATTENTION_MASK, INPUT_IDS, TEXT_EMBEDS};
use wgvision_graphs::{ModelConfig, Task, TextQueries, IMAGE_INPUT};

/// Which tokenizer a model's text tower reads: SigLIP's SentencePiece, else CLIP's BPE.
pub fn wants_sentencepiece(config: &ModelConfig) -> bool {
    matches!(config, ModelConfig::Clip(c) if c.kind == ClipKind::Siglip)
}

/// A tokenizer file or folder's texts, as a model file stores them: SentencePiece
/// (spiece.model, or a Unigram tokenizer.json) for SigLIP, CLIP's BPE (tokenizer.json,
/// or vocab.json + merges.txt) otherwise; checked by building the tokenizer.
pub fn read_tokenizer_files(path: &std::path::Path, config: &ModelConfig) -> Result<Files> {
    Ok(read_checked(path, config)?.0)
}

/// A tokenizer file or folder, for `config`'s text tower.
pub fn load_tokenizer(path: &std::path::Path, config: &ModelConfig) -> Result<Box<dyn TextTokenizer>> {
    Ok(read_checked(path, config)?.1)
}

/// A tokenizer's files (name, text), as a model file stores them.
type Files = Vec<(String, String)>;

/// The files of `read_tokenizer_files` and the tokenizer built from them.
fn read_checked(path: &std::path::Path, config: &ModelConfig) -> Result<(Files, Box<dyn TextTokenizer>)> {
    let err = |message: String| Error::Input { tensor: "tokenizer".into(), message };
    let sp = wants_sentencepiece(config);
    let files = if sp { SentencePieceTokenizer::read_files(path) } else { ClipTokenizer::read_files(path) }.map_err(|e| err(e.to_string()))?;
    if sp != SentencePieceTokenizer::handles(&files) {
        let (want, got) = if sp { ("SentencePiece (spiece.model)", "CLIP BPE") } else { ("CLIP BPE", "SentencePiece") };
        return Err(err(format!("{}: {} needs a {want} tokenizer, this is {got}", path.display(), config.name())));
    }
    let tok = stored_tokenizer(&files).map_err(|message| err(format!("{}: {message}", path.display())))?;
    Ok((files, tok))
}

/// The tokenizer stored in a model file (its files' names and texts).
pub fn stored_tokenizer(files: &[(String, String)]) -> std::result::Result<Box<dyn TextTokenizer>, String> {
    if SentencePieceTokenizer::handles(files) {
        return Ok(Box::new(SentencePieceTokenizer::from_files(files)?));
    }
    Ok(Box::new(ClipTokenizer::from_files(files)?))
}

/// One label's result for one image.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LabelScore {
    pub label: String,
    /// CLIP: the softmax over the labels; SigLIP: sigmoid(logit).
    pub score: f32,
    /// logits_per_image.
    pub logit: f32,
}

pub struct ZeroShot<'a> {
    model: &'a Model,
    tok: &'a dyn TextTokenizer,
    text: TextQueries,
    sigmoid: bool,
    cache: Mutex<HashMap<Vec<String>, Arc<Vec<f32>>>>,
    text_runs: AtomicUsize,
}

impl<'a> ZeroShot<'a> {
    pub fn new(model: &'a Model, tok: &'a dyn TextTokenizer) -> Result<ZeroShot<'a>> {
        let (Task::ZeroShot(text), ModelConfig::Clip(c)) = (model.config.task(), &model.config) else {
            return Err(Error::Input { tensor: "model".into(), message: "zero-shot labels need a CLIPModel / SiglipModel".into() });
        };
        let sigmoid = c.kind == ClipKind::Siglip;
        Ok(ZeroShot { model, tok, text, sigmoid, cache: Mutex::new(HashMap::new()), text_runs: AtomicUsize::new(0) })
    }

    /// How many times the text tower has run.
    pub fn text_runs(&self) -> usize {
        self.text_runs.load(Ordering::Relaxed)
    }

    /// Normalised text embeddings [N, P] of a label set, from the cache or one run.
    pub fn embed(&self, labels: &[String]) -> Result<Arc<Vec<f32>>> {
        if labels.is_empty() {
            return Err(Error::Input { tensor: "labels".into(), message: "at least one label is needed".into() });
        }
        if let Some(hit) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(labels) {
            return Ok(hit.clone());
        }
        let l = self.text.max_len;
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for t in labels {
            let (i, m) = self.tok.encode_padded(t, l);
            ids.extend(i.iter().map(|&v| v as f32));
            mask.extend(m.iter().map(|&v| v as f32));
        }
        let n = labels.len();
        let shape = [n, l];
        let mut inputs: Vec<(&str, &[f32], &[usize])> = vec![(INPUT_IDS, &ids, &shape)];
        if self.text.attention_mask {
            inputs.push((ATTENTION_MASK, &mask, &shape));
        }
        let out = self.model.run_inputs(&inputs)?;
        self.text_runs.fetch_add(1, Ordering::Relaxed);
        let embeds = out.into_iter().find(|t| t.name == TEXT_EMBEDS).map(|t| t.data).ok_or_else(|| Error::Input { tensor: TEXT_EMBEDS.into(), message: "missing model output".into() })?;
        let entry = Arc::new(embeds);
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(labels.to_vec(), entry.clone());
        Ok(entry)
    }

    /// logits_per_image [B, N] for a preprocessed pixel batch [B, 3, S, S].
    pub fn logits(&self, pixels: &[f32], batch: usize, labels: &[String]) -> Result<Vec<f32>> {
        let embeds = self.embed(labels)?;
        let (_, shape) = self.model.config.image_input(batch);
        let p = self.text.embed_dim;
        let out = self.model.run_inputs(&[(IMAGE_INPUT, pixels, &shape), (TEXT_EMBEDS, &embeds, &[labels.len(), p])])?;
        out.into_iter().find(|t| t.name == "logits_per_image").map(|t| t.data).ok_or_else(|| Error::Input { tensor: "logits_per_image".into(), message: "missing model output".into() })
    }

    /// Every label's score per image, ranked best first.
    pub fn classify(&self, pixels: &[f32], batch: usize, labels: &[String]) -> Result<Vec<Vec<LabelScore>>> {
        let logits = self.logits(pixels, batch, labels)?;
        let n = labels.len();
        Ok(logits
            .chunks(n)
            .map(|row| {
                let scores: Vec<f32> = if self.sigmoid { row.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect() } else { crate::softmax(row) };
                let mut v: Vec<LabelScore> = (0..n).map(|i| LabelScore { label: labels[i].clone(), score: scores[i], logit: row[i] }).collect();
                v.sort_by(|a, b| b.logit.partial_cmp(&a.logit).unwrap_or(std::cmp::Ordering::Equal));
                v
            })
            .collect())
    }
}
