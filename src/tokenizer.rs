//! CLIP's byte-level BPE tokenizer, as transformers' `CLIPTokenizerFast` runs it for
//! OWL-ViT: added (special) tokens are split out of the raw text first; the rest is NFC
//! normalised, whitespace-collapsed and lower-cased, split by CLIP's pattern (contractions,
//! letter runs, single digits, other symbol runs), mapped byte-wise to printable
//! characters, and merged by BPE rank with `</w>` marking each word's end; then
//! `<|startoftext|>` ... `<|endoftext|>`, truncated and padded to the model's length.
//!
//! Vocabulary: a `tokenizer.json`, `vocab.json` + `merges.txt`, or OpenAI's merges file
//! alone (then the specials are CLIP's two plus OWL-ViT's pad token "!", as its tokenizer
//! config declares).
use regex::Regex;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, thiserror::Error)]
#[error("tokenizer {path}: {message}")]
pub struct TokenizerError {
    pub path: String,
    pub message: String,
}

const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";

pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    /// (content, id, matched after normalisation), longest first.
    added: Vec<(String, u32, bool)>,
    bos: u32,
    eos: u32,
    pad: u32,
    byte_char: [char; 256],
    split: Regex,
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

/// GPT-2 / CLIP byte -> printable character table.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut n = 0;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).unwrap_or('?')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('?')
        };
    }
    table
}

impl ClipTokenizer {
    /// A `tokenizer.json` file, or a directory holding one or `vocab.json` + `merges.txt`.
    pub fn load(path: &Path) -> Result<ClipTokenizer, TokenizerError> {
        let files = Self::read_files(path)?;
        Self::from_files(&files).map_err(|message| TokenizerError { path: path.display().to_string(), message })
    }

    /// The vocabulary files' texts, keyed by file name ("tokenizer.json", or "vocab.json"
    /// and "merges.txt"), for storing in a model file.
    pub fn read_files(path: &Path) -> Result<Vec<(String, String)>, TokenizerError> {
        let err = |message: String| TokenizerError { path: path.display().to_string(), message };
        let read = |p: &Path| read_text(p);
        let json_path = if path.is_dir() { path.join("tokenizer.json") } else { path.to_path_buf() };
        if json_path.is_file() && json_path.extension().is_some_and(|e| e == "json") && !json_path.ends_with("vocab.json") {
            return Ok(vec![("tokenizer.json".into(), read(&json_path)?)]);
        }
        // OpenAI's merges file alone (bpe_simple_vocab_16e6.txt, decompressed).
        if path.is_file() && path.extension().is_some_and(|e| e == "txt") && !path.ends_with("merges.txt") {
            return Ok(vec![("clip_merges.txt".into(), read(path)?)]);
        }
        let dir = if path.is_dir() { path.to_path_buf() } else { path.parent().unwrap_or(Path::new(".")).to_path_buf() };
        let (vp, mp) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if vp.is_file() && mp.is_file() {
            return Ok(vec![("vocab.json".into(), read(&vp)?), ("merges.txt".into(), read(&mp)?)]);
        }
        Err(err("expected tokenizer.json, a directory with vocab.json and merges.txt, or CLIP's merges .txt".into()))
    }

    /// From the texts `read_files` returns.
    pub fn from_files(files: &[(String, String)]) -> Result<ClipTokenizer, String> {
        let get = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, t)| t.as_str());
        if let Some(text) = get("tokenizer.json") {
            let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("tokenizer.json is not JSON: {e}"))?;
            let model = &v["model"];
            if model["type"].as_str() != Some("BPE") {
                return Err("not a BPE tokenizer.json".into());
            }
            let vocab = parse_vocab(&model["vocab"]).ok_or("model.vocab is not a token -> id map")?;
            let merges: Option<Vec<(String, String)>> = model["merges"].as_array().map(|a| {
                a.iter()
                    .filter_map(|m| match m {
                        serde_json::Value::String(s) => s.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())),
                        serde_json::Value::Array(p) if p.len() == 2 => Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string())),
                        _ => None,
                    })
                    .collect()
            });
            let merges = merges.ok_or("model.merges missing")?;
            let added: Vec<(String, u32, bool)> = v["added_tokens"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| Some((t["content"].as_str()?.to_string(), t["id"].as_u64()? as u32, t["normalized"].as_bool().unwrap_or(false))))
                        .collect()
                })
                .unwrap_or_default();
            return Self::new(vocab, merges, added);
        }
        if let Some(text) = get("clip_merges.txt") {
            return Self::from_clip_merges(text);
        }
        let (Some(vocab), Some(merges)) = (get("vocab.json"), get("merges.txt")) else {
            return Err("expected tokenizer.json, or vocab.json and merges.txt".into());
        };
        let v: serde_json::Value = serde_json::from_str(vocab).map_err(|e| format!("vocab.json: {e}"))?;
        let vocab = parse_vocab(&v).ok_or("vocab.json is not a token -> id map")?;
        let merges = merges
            .lines()
            .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
            .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
            .collect();
        let added = ["!", BOS, EOS].iter().filter_map(|t| vocab.get(*t).map(|&id| (t.to_string(), id, *t != "!"))).collect();
        Self::new(vocab, merges, added)
    }

    /// From OpenAI CLIP's merges file alone (`bpe_simple_vocab_16e6.txt`, optionally with
    /// its `#version` line): the vocabulary is built as CLIP builds it (the 256 byte
    /// symbols, the same with `</w>`, one token per merge, then the two special tokens).
    pub fn from_clip_merges(text: &str) -> Result<ClipTokenizer, String> {
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("#version")).collect();
        let n = 49152 - 256 - 2;
        let merges: Vec<(String, String)> = lines
            .iter()
            .take(n)
            .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
            .collect();
        let table = bytes_to_unicode();
        let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let order: Vec<char> = (0..256u32).filter(|&b| printable(b)).chain((0..256u32).filter(|&b| !printable(b))).map(|b| table[b as usize]).collect();
        let mut tokens: Vec<String> = order.iter().map(|c| c.to_string()).collect();
        tokens.extend(order.iter().map(|c| format!("{c}</w>")));
        tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        tokens.extend([BOS.to_string(), EOS.to_string()]);
        let vocab: HashMap<String, u32> = tokens.into_iter().enumerate().map(|(i, t)| (t, i as u32)).collect();
        let added = ["!", BOS, EOS].iter().filter_map(|t| vocab.get(*t).map(|&id| (t.to_string(), id, *t != "!"))).collect();
        Self::new(vocab, merges, added)
    }

    fn new(vocab: HashMap<String, u32>, merges: Vec<(String, String)>, mut added: Vec<(String, u32, bool)>) -> Result<ClipTokenizer, String> {
        let id = |t: &str| vocab.get(t).copied().ok_or_else(|| format!("vocabulary has no {t}"));
        let (bos, eos) = (id(BOS)?, id(EOS)?);
        let pad = added.iter().find(|(c, _, _)| c == "!").map_or(eos, |t| t.1);
        // An empty added token would match everywhere and never consume text.
        added.retain(|(c, _, _)| !c.is_empty());
        added.sort_by_key(|(c, _, _)| std::cmp::Reverse(c.len()));
        let ranks = merges.into_iter().enumerate().map(|(i, m)| (m, i)).collect();
        let split = Regex::new(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+").map_err(|e| e.to_string())?;
        Ok(ClipTokenizer { vocab, ranks, added, bos, eos, pad, byte_char: bytes_to_unicode(), split, cache: Mutex::new(HashMap::new()) })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// `<|startoftext|>` tokens `<|endoftext|>`, untruncated.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.bos];
        ids.extend(self.tokens(text));
        ids.push(self.eos);
        ids
    }

    /// As transformers with `padding="max_length", truncation=True`: at most `max_len`
    /// ids (the end token kept), padded with the pad id; mask 1 on real tokens.
    pub fn encode_padded(&self, text: &str, max_len: usize) -> (Vec<u32>, Vec<u32>) {
        let mut body = self.tokens(text);
        body.truncate(max_len.saturating_sub(2));
        let mut ids = vec![self.bos];
        ids.extend(body);
        ids.push(self.eos);
        ids.truncate(max_len);
        let mut mask = vec![1; ids.len()];
        ids.resize(max_len, self.pad);
        mask.resize(max_len, 0);
        (ids, mask)
    }

    /// Token ids of `text` without the start / end tokens.
    fn tokens(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        // Added tokens matched in the raw text ("!" for OWL-ViT) split it first.
        let mut rest = text;
        while !rest.is_empty() {
            let hit = self.added.iter().filter_map(|(c, id, _)| rest.find(c.as_str()).map(|pos| (pos, c.len(), *id))).min_by_key(|(pos, len, _)| (*pos, std::cmp::Reverse(*len)));
            match hit {
                Some((pos, len, id)) => {
                    self.plain(&rest[..pos], &mut out);
                    out.push(id);
                    rest = &rest[pos + len..];
                }
                None => {
                    self.plain(rest, &mut out);
                    break;
                }
            }
        }
        out
    }

    fn plain(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let normalized: String = text.nfc().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        for piece in self.split.find_iter(&normalized) {
            let word: String = piece.as_str().bytes().map(|b| self.byte_char[b as usize]).collect();
            out.extend(self.bpe(&word));
        }
    }

    /// BPE merges of one byte-mapped word, lowest rank first, `</w>` on the last symbol.
    fn bpe(&self, word: &str) -> Vec<u32> {
        if let Some(ids) = self.cache.lock().ok().and_then(|c| c.get(word).cloned()) {
            return ids;
        }
        let chars: Vec<char> = word.chars().collect();
        let mut syms: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = syms.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = (0..syms.len().saturating_sub(1))
                .filter_map(|i| self.ranks.get(&(syms[i].clone(), syms[i + 1].clone())).map(|&r| (r, i)))
                .min();
            let Some((_, i)) = best else { break };
            let (a, b) = (syms[i].clone(), syms[i + 1].clone());
            // Merge every occurrence of the pair, left to right.
            let mut merged = Vec::with_capacity(syms.len());
            let mut j = 0;
            while j < syms.len() {
                if j + 1 < syms.len() && syms[j] == a && syms[j + 1] == b {
                    merged.push(format!("{a}{b}"));
                    j += 2;
                } else {
                    merged.push(syms[j].clone());
                    j += 1;
                }
            }
            syms = merged;
        }
        let ids: Vec<u32> = syms.iter().map(|s| self.vocab.get(s).copied().unwrap_or(self.eos)).collect();
        if let Ok(mut c) = self.cache.lock() {
            c.insert(word.to_string(), ids.clone());
        }
        ids
    }
}

/// A tokenizer file's bytes: a regular file within the host-memory budget (never a
/// device or a pipe read without end).
pub(crate) fn read_bounded(p: &Path) -> Result<Vec<u8>, TokenizerError> {
    wgvision_weights::st::read_file(p).map_err(|e| TokenizerError { path: p.display().to_string(), message: e.to_string() })
}

/// `read_bounded` as UTF-8 text.
pub(crate) fn read_text(p: &Path) -> Result<String, TokenizerError> {
    String::from_utf8(read_bounded(p)?).map_err(|_| TokenizerError { path: p.display().to_string(), message: "not UTF-8 text".into() })
}

fn parse_vocab(v: &serde_json::Value) -> Option<HashMap<String, u32>> {
    v.as_object()?.iter().map(|(k, id)| Some((k.clone(), id.as_u64()? as u32))).collect()
}

/// What a text tower's caller needs from its tokenizer, whichever it is (CLIP's BPE for
/// OWL-ViT, SigLIP's SentencePiece in `crate::sentencepiece`).
pub trait TextTokenizer: Send + Sync {
    /// All ids, special tokens included, untruncated.
    fn encode(&self, text: &str) -> Vec<u32>;
    /// As transformers with `padding="max_length", truncation=True`: `max_len` ids and the
    /// attention mask (1 on real tokens).
    fn encode_padded(&self, text: &str, max_len: usize) -> (Vec<u32>, Vec<u32>);
    fn pad_id(&self) -> u32;
}

impl TextTokenizer for ClipTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        ClipTokenizer::encode(self, text)
    }
    fn encode_padded(&self, text: &str, max_len: usize) -> (Vec<u32>, Vec<u32>) {
        ClipTokenizer::encode_padded(self, text, max_len)
    }
    fn pad_id(&self) -> u32 {
        ClipTokenizer::pad_id(self)
    }
}
