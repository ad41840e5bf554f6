//! SentencePiece Unigram tokenizer, for SigLIP's text tower. Two sources:
//!
//! - `spiece.model` (what SigLIP's hub folders ship): run as transformers' `SiglipTokenizer`
//!   runs it through the sentencepiece library: a "▁" before the text (literal "▁" read as
//!   spaces), lower-casing, SigLIP's special tokens split out, ASCII punctuation removed,
//!   whitespace folded; then sentencepiece's normaliser (the model's precompiled charsmap,
//!   whitespace folding, spaces as "▁", no dummy prefix) and Viterbi segmentation by piece
//!   score (f32 sums, unknown characters fused into one `<unk>`); `</s>` appended unless the
//!   text already ends with it; padded with `</s>`.
//! - `tokenizer.json` with a Unigram model: run as the `tokenizers` library runs it (added
//!   tokens, the normaliser and pre-tokeniser sequences, Unigram in f64, the template).
//!
//! SiglipModel as released is called without an attention mask (its hub tokenizer config
//! returns `input_ids` only; the text tower pools the last position, padding included);
//! `encode_padded` still returns the mask transformers would give on request.
use crate::tokenizer::{TextTokenizer, TokenizerError};
use regex::Regex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use unicode_normalization::UnicodeNormalization;

/// The name `read_files` gives a binary spiece.model, stored as base64 text.
pub const SPIECE_BASE64: &str = "spiece.model.base64";

/// A SentencePiece Unigram tokenizer (see the module docs for what each source runs).
pub struct SentencePieceTokenizer {
    model: Unigram,
    pipeline: Pipeline,
    pad: u32,
    eos: Option<u32>,
}

/// SiglipTokenizer's special tokens and casing (its defaults, or a tokenizer_config.json's).
#[derive(Clone, Debug)]
pub struct SiglipOptions {
    pub do_lower_case: bool,
    pub eos_token: String,
    pub unk_token: String,
    pub pad_token: String,
}

impl Default for SiglipOptions {
    fn default() -> Self {
        SiglipOptions { do_lower_case: true, eos_token: "</s>".into(), unk_token: "<unk>".into(), pad_token: "</s>".into() }
    }
}

enum Pipeline {
    Siglip(SiglipText),
    Json(JsonPipeline),
}

impl SentencePieceTokenizer {
    /// An `spiece.model` or `tokenizer.json` file, or a directory holding one (spiece.model
    /// first, as transformers has no fast SigLIP tokenizer). A `tokenizer_config.json` beside
    /// it may set `do_lower_case` and the eos / unk / pad tokens.
    pub fn load(path: &Path) -> Result<SentencePieceTokenizer, TokenizerError> {
        let (main, _) = Self::locate(path)?;
        let files = Self::read_files(path)?;
        Self::from_files(&files).map_err(|message| TokenizerError { path: main.display().to_string(), message })
    }

    /// The tokenizer file and the tokenizer_config.json beside it (if any).
    fn locate(path: &Path) -> Result<(PathBuf, Option<PathBuf>), TokenizerError> {
        let main = if path.is_dir() {
            let (sp, json) = (path.join("spiece.model"), path.join("tokenizer.json"));
            if sp.is_file() {
                sp
            } else if json.is_file() {
                json
            } else {
                return Err(TokenizerError { path: path.display().to_string(), message: "expected spiece.model or tokenizer.json in the directory".into() });
            }
        } else {
            path.to_path_buf()
        };
        let config = main.parent().unwrap_or(Path::new(".")).join("tokenizer_config.json");
        Ok((main.clone(), config.is_file().then_some(config)))
    }

    /// The tokenizer's files as texts keyed by name, for storing in a model file (as
    /// `ClipTokenizer::read_files`): "tokenizer.json", or [`SPIECE_BASE64`] (the binary
    /// spiece.model in base64), and "tokenizer_config.json" when there is one.
    pub fn read_files(path: &Path) -> Result<Vec<(String, String)>, TokenizerError> {
        let (main, config) = Self::locate(path)?;
        let err = |p: &Path, message: String| TokenizerError { path: p.display().to_string(), message };
        let bytes = crate::tokenizer::read_bounded(&main)?;
        let is_json = main.extension().is_some_and(|e| e == "json") || bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let mut files = vec![if is_json {
            ("tokenizer.json".to_string(), String::from_utf8(bytes).map_err(|_| err(&main, "tokenizer.json is not UTF-8".into()))?)
        } else {
            (SPIECE_BASE64.to_string(), base64_encode(&bytes))
        }];
        if let Some(c) = config {
            files.push(("tokenizer_config.json".into(), crate::tokenizer::read_text(&c)?));
        }
        Ok(files)
    }

    /// Whether `read_files`-style files hold a SentencePiece tokenizer (an spiece.model, or
    /// a tokenizer.json whose model is Unigram) rather than, say, CLIP's BPE.
    pub fn handles(files: &[(String, String)]) -> bool {
        files.iter().any(|(n, t)| {
            n == SPIECE_BASE64 || (n == "tokenizer.json" && serde_json::from_str::<serde_json::Value>(t).is_ok_and(|v| v["model"]["type"] == "Unigram"))
        })
    }

    /// From the texts `read_files` returns.
    pub fn from_files(files: &[(String, String)]) -> Result<SentencePieceTokenizer, String> {
        let get = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, t)| t.as_str());
        let config = match get("tokenizer_config.json") {
            Some(t) => Some(serde_json::from_str::<serde_json::Value>(t).map_err(|e| format!("tokenizer_config.json is not JSON: {e}"))?),
            None => None,
        };
        if let Some(b64) = get(SPIECE_BASE64) {
            let bytes = base64_decode(b64).ok_or_else(|| format!("{SPIECE_BASE64} is not base64"))?;
            let mut opts = SiglipOptions::default();
            if let Some(c) = &config {
                if let Some(b) = c["do_lower_case"].as_bool() {
                    opts.do_lower_case = b;
                }
                for (key, slot) in [("eos_token", &mut opts.eos_token), ("unk_token", &mut opts.unk_token), ("pad_token", &mut opts.pad_token)] {
                    if let Some(t) = config_token(&c[key]) {
                        *slot = t;
                    }
                }
            }
            return Self::from_spiece_model_with(&bytes, &opts);
        }
        let text = get("tokenizer.json").ok_or("expected spiece.model or tokenizer.json")?;
        let mut tok = Self::from_tokenizer_json(text)?;
        if let Some(pad) = config.as_ref().and_then(|c| config_token(&c["pad_token"])) {
            tok.pad = tok.model.all.get(&pad).copied().ok_or_else(|| format!("tokenizer_config.json: pad_token {pad:?} is not in the vocabulary"))?;
        }
        Ok(tok)
    }

    /// From the bytes of an `spiece.model`, with SiglipTokenizer's defaults.
    pub fn from_spiece_model(bytes: &[u8]) -> Result<SentencePieceTokenizer, String> {
        Self::from_spiece_model_with(bytes, &SiglipOptions::default())
    }

    pub fn from_spiece_model_with(bytes: &[u8], opts: &SiglipOptions) -> Result<SentencePieceTokenizer, String> {
        let proto = ModelProto::parse(bytes)?;
        if proto.model_type != 1 {
            return Err(format!("spiece.model: model type {} is not Unigram (1)", proto.model_type));
        }
        let model = Unigram::from_spm(&proto)?;
        let id = |t: &str, what: &str| model.all.get(t).copied().ok_or_else(|| format!("spiece.model: the {what} token {t:?} is not a piece"));
        let (eos, pad) = (id(&opts.eos_token, "eos")?, id(&opts.pad_token, "pad")?);
        let unk = id(&opts.unk_token, "unk")?;
        let mut specials: Vec<(String, u32)> = Vec::new();
        // transformers' all_special_tokens order: eos, unk, pad.
        for (t, id) in [(&opts.eos_token, eos), (&opts.unk_token, unk), (&opts.pad_token, pad)] {
            if !specials.iter().any(|(s, _)| s == t) {
                specials.push((t.clone(), id));
            }
        }
        // SiglipTokenizer clears the model's add_dummy_prefix (it prepends "▁" itself).
        let normalizer = SpNormalizer::from_proto(&proto, false);
        let mut text = SiglipText { normalizer, lower: opts.do_lower_case, specials, unk_token: opts.unk_token.clone(), unk_len: 0 };
        text.unk_len = text.sp_encode(&model, &opts.unk_token).len();
        Ok(SentencePieceTokenizer { model, pipeline: Pipeline::Siglip(text), pad, eos: Some(eos) })
    }

    /// From the text of a `tokenizer.json` whose model is Unigram.
    pub fn from_tokenizer_json(text: &str) -> Result<SentencePieceTokenizer, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("tokenizer.json is not JSON: {e}"))?;
        let m = &v["model"];
        if m["type"].as_str() != Some("Unigram") {
            return Err(format!("tokenizer.json: model type {} is not Unigram", m["type"]));
        }
        let vocab = m["vocab"].as_array().ok_or("tokenizer.json: model.vocab is not a list of [piece, score]")?;
        let mut pieces = Vec::with_capacity(vocab.len());
        for (i, e) in vocab.iter().enumerate() {
            let (Some(p), Some(s)) = (e.get(0).and_then(|p| p.as_str()), e.get(1).and_then(|s| s.as_f64())) else {
                return Err(format!("tokenizer.json: model.vocab[{i}] is not [piece, score]"));
            };
            pieces.push((p.to_string(), s));
        }
        let unk = match &m["unk_id"] {
            serde_json::Value::Null => return Err("tokenizer.json: the Unigram model has no unk_id".into()),
            u => u.as_u64().ok_or("tokenizer.json: model.unk_id is not an id")?,
        };
        let model = Unigram::from_json(pieces, unk, m["byte_fallback"].as_bool().unwrap_or(false))?;
        let pipeline = JsonPipeline::parse(&v, &model)?;
        let eos = pipeline.suffix.last().copied();
        let pad = v["padding"]["pad_id"].as_u64().map(|p| p as u32).or(eos).unwrap_or(model.unk_id);
        if pad as usize >= model.size() {
            return Err(format!("tokenizer.json: pad id {pad} is outside the vocabulary of {}", model.size()));
        }
        Ok(SentencePieceTokenizer { model, pipeline: Pipeline::Json(pipeline), pad, eos })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// The end-of-sequence id (`</s>`; for a tokenizer.json, its template's last token).
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    pub fn unk_id(&self) -> u32 {
        self.model.unk_id
    }

    /// Pieces in the vocabulary (ids are below this).
    pub fn vocab_size(&self) -> usize {
        self.model.size()
    }

    /// All ids of `text`, end token included, untruncated.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_padded(text, usize::MAX).0
    }

    /// As transformers with `padding="max_length", truncation=True`: at most `max_len` ids
    /// (the end token kept), padded with the pad id; mask 1 on real tokens.
    pub fn encode_padded(&self, text: &str, max_len: usize) -> (Vec<u32>, Vec<u32>) {
        let mut ids = match &self.pipeline {
            Pipeline::Siglip(s) => {
                let mut body = s.tokens(&self.model, text);
                let eos = self.eos.unwrap_or(self.pad);
                // transformers counts one special token whether or not it is added.
                if body.len() + 1 > max_len {
                    body.truncate(max_len.saturating_sub(1));
                }
                // SiglipTokenizer does not add `</s>` to a text that already ends with it.
                if body.last() != Some(&eos) {
                    body.push(eos);
                }
                body
            }
            Pipeline::Json(j) => {
                let mut body = j.tokens(&self.model, text);
                body.truncate(max_len.saturating_sub(j.prefix.len() + j.suffix.len()));
                let mut ids = j.prefix.clone();
                ids.extend(body);
                ids.extend(&j.suffix);
                ids
            }
        };
        ids.truncate(max_len);
        let mut mask = vec![1; ids.len()];
        if max_len != usize::MAX {
            ids.resize(max_len, self.pad);
            mask.resize(max_len, 0);
        }
        (ids, mask)
    }
}

impl TextTokenizer for SentencePieceTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        SentencePieceTokenizer::encode(self, text)
    }
    fn encode_padded(&self, text: &str, max_len: usize) -> (Vec<u32>, Vec<u32>) {
        SentencePieceTokenizer::encode_padded(self, text, max_len)
    }
    fn pad_id(&self) -> u32 {
        self.pad
    }
}

/// A token in a tokenizer_config.json: a string or an AddedToken object.
fn config_token(v: &serde_json::Value) -> Option<String> {
    v.as_str().or_else(|| v["content"].as_str()).map(str::to_string)
}

// ---------------------------------------------------------------------------------------
// spiece.model: a protobuf ModelProto.

/// SentencePiece piece types.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

struct ModelProto {
    pieces: Vec<(String, f32, PieceType)>,
    model_type: u64,
    byte_fallback: bool,
    whitespace_as_suffix: bool,
    charsmap: Vec<u8>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
}

/// A protobuf value as the wire carries it.
enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The fields of one protobuf message, in order.
struct ProtoReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ProtoReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        ProtoReader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or("field runs past the end of the message")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn next_field(&mut self) -> Result<Option<(u64, Wire<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed64
            }
            2 => {
                let n = self.varint()?;
                Wire::Bytes(self.take(usize::try_from(n).map_err(|_| "length too large")?)?)
            }
            5 => {
                let b = self.take(4)?;
                Wire::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => return Err(format!("unsupported protobuf wire type {w}")),
        };
        Ok(Some((key >> 3, value)))
    }
}

impl ModelProto {
    fn parse(bytes: &[u8]) -> Result<ModelProto, String> {
        let bad = |m: String| format!("spiece.model is not a SentencePiece ModelProto: {m}");
        let mut p = ModelProto {
            pieces: Vec::new(),
            model_type: 1,
            byte_fallback: false,
            whitespace_as_suffix: false,
            charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        };
        let mut r = ProtoReader::new(bytes);
        while let Some((field, v)) = r.next_field().map_err(bad)? {
            match (field, v) {
                (1, Wire::Bytes(b)) => p.pieces.push(Self::piece(b).map_err(|m| bad(format!("piece {}: {m}", p.pieces.len())))?),
                (2, Wire::Bytes(b)) => {
                    let mut t = ProtoReader::new(b);
                    while let Some((f, v)) = t.next_field().map_err(|m| bad(format!("trainer_spec: {m}")))? {
                        match (f, v) {
                            (3, Wire::Varint(x)) => p.model_type = x,
                            (24, Wire::Varint(x)) => p.whitespace_as_suffix = x != 0,
                            (35, Wire::Varint(x)) => p.byte_fallback = x != 0,
                            _ => {}
                        }
                    }
                }
                (3, Wire::Bytes(b)) => {
                    let mut t = ProtoReader::new(b);
                    while let Some((f, v)) = t.next_field().map_err(|m| bad(format!("normalizer_spec: {m}")))? {
                        match (f, v) {
                            (2, Wire::Bytes(c)) => p.charsmap = c.to_vec(),
                            (3, Wire::Varint(x)) => p.add_dummy_prefix = x != 0,
                            (4, Wire::Varint(x)) => p.remove_extra_whitespaces = x != 0,
                            (5, Wire::Varint(x)) => p.escape_whitespaces = x != 0,
                            _ => {}
                        }
                    }
                }
                (1..=3, _) => return Err(bad(format!("field {field} has the wrong wire type"))),
                _ => {}
            }
        }
        if p.pieces.is_empty() {
            return Err("spiece.model has no pieces (empty vocabulary)".into());
        }
        Ok(p)
    }

    fn piece(b: &[u8]) -> Result<(String, f32, PieceType), String> {
        let (mut piece, mut score, mut ty) = (None, 0.0f32, 1u64);
        let mut r = ProtoReader::new(b);
        while let Some((f, v)) = r.next_field()? {
            match (f, v) {
                (1, Wire::Bytes(s)) => piece = Some(std::str::from_utf8(s).map_err(|_| "not UTF-8")?.to_string()),
                (2, Wire::Fixed32(x)) => score = f32::from_bits(x),
                (3, Wire::Varint(x)) => ty = x,
                (1..=3, _) => return Err(format!("field {f} has the wrong wire type")),
                _ => {}
            }
        }
        let ty = match ty {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            t => return Err(format!("unknown piece type {t}")),
        };
        let piece = piece.filter(|p| !p.is_empty()).ok_or("empty piece")?;
        Ok((piece, score, ty))
    }
}

// ---------------------------------------------------------------------------------------
// The precompiled charsmap: a darts-clone double-array trie over UTF-8 keys whose values are
// offsets into a block of NUL-terminated replacement strings.

struct CharsMap {
    units: Vec<u32>,
    strings: Vec<u8>,
}

impl CharsMap {
    /// `<trie size: u32 LE><trie units><replacement strings>`; None when empty (identity).
    fn parse(blob: &[u8]) -> Result<Option<CharsMap>, String> {
        if blob.is_empty() {
            return Ok(None);
        }
        let bad = || "precompiled_charsmap is malformed".to_string();
        let head = blob.get(..4).ok_or_else(bad)?;
        let n = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if !n.is_multiple_of(4) || n + 4 > blob.len() {
            return Err(bad());
        }
        let units = blob[4..4 + n].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Some(CharsMap { units, strings: blob[4 + n..].to_vec() }))
    }

    /// Every key that is a prefix of `key`, shortest first: (length, value).
    fn prefixes(&self, key: &[u8], mut f: impl FnMut(usize, u32)) {
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let Some(&root) = self.units.first() else { return };
        let mut pos = offset(root);
        for (i, &c) in key.iter().enumerate() {
            pos ^= c as usize;
            let Some(&u) = self.units.get(pos) else { return };
            if u & ((1 << 31) | 0xff) != c as u32 {
                return;
            }
            pos ^= offset(u);
            if (u >> 8) & 1 == 1 {
                let Some(&v) = self.units.get(pos) else { return };
                f(i + 1, v & ((1 << 31) - 1));
            }
        }
    }

    /// The replacement string at `value`.
    fn string(&self, value: u32) -> Option<&str> {
        let s = self.strings.get(value as usize..)?;
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).ok()
    }

    /// sentencepiece: the longest rule at the start of `input`.
    fn longest(&self, input: &str) -> Option<(&str, usize)> {
        let mut best = None;
        // (A key ending inside a character can only come from a corrupt charsmap.)
        self.prefixes(input.as_bytes(), |len, v| {
            if input.is_char_boundary(len) {
                best = Some((len, v));
            }
        });
        let (len, v) = best?;
        Some((self.string(v)?, len))
    }

    /// tokenizers' `Precompiled`: the first (shortest) rule that is a prefix of `chunk`.
    fn first(&self, chunk: &str) -> Option<&str> {
        let mut first = None;
        self.prefixes(chunk.as_bytes(), |_, v| {
            first.get_or_insert(v);
        });
        self.string(first?)
    }
}

/// sentencepiece's normaliser (normalizer.cc), as it runs for encoding.
struct SpNormalizer {
    map: Option<CharsMap>,
    /// User-defined pieces pass through unnormalised (longest match first).
    user: HashMap<String, ()>,
    user_max: usize,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    whitespace_as_suffix: bool,
}

impl SpNormalizer {
    fn from_proto(p: &ModelProto, add_dummy_prefix: bool) -> SpNormalizer {
        let user: HashMap<String, ()> = p.pieces.iter().filter(|x| x.2 == PieceType::UserDefined).map(|x| (x.0.clone(), ())).collect();
        let user_max = user.keys().map(String::len).max().unwrap_or(0);
        // A malformed charsmap was reported at load (Unigram::from_spm).
        SpNormalizer {
            map: CharsMap::parse(&p.charsmap).ok().flatten(),
            user,
            user_max,
            add_dummy_prefix,
            remove_extra_whitespaces: p.remove_extra_whitespaces,
            escape_whitespaces: p.escape_whitespaces,
            whitespace_as_suffix: p.whitespace_as_suffix,
        }
    }

    /// The normalised form of the start of `input` and the bytes it consumes.
    fn prefix<'a>(&'a self, input: &'a str) -> (&'a str, usize) {
        for len in (1..=self.user_max.min(input.len())).rev() {
            if input.is_char_boundary(len) && self.user.contains_key(&input[..len]) {
                return (&input[..len], len);
            }
        }
        if let Some(hit) = self.map.as_ref().and_then(|m| m.longest(input)) {
            return hit;
        }
        let n = input.chars().next().map_or(0, char::len_utf8);
        (&input[..n], n)
    }

    fn normalize(&self, mut input: &str) -> String {
        let space = if self.escape_whitespaces { "\u{2581}" } else { " " };
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (s, n) = self.prefix(input);
                if s != " " {
                    break;
                }
                input = &input[n..];
            }
        }
        let mut out = String::with_capacity(input.len() * 3 / 2);
        if input.is_empty() {
            return out;
        }
        if !self.whitespace_as_suffix && self.add_dummy_prefix {
            out.push_str(space);
        }
        let mut prev_space = self.remove_extra_whitespaces;
        while !input.is_empty() {
            let (mut s, n) = self.prefix(input);
            if prev_space {
                s = s.trim_start_matches(' ');
            }
            if !s.is_empty() {
                for c in s.chars() {
                    if c == ' ' && self.escape_whitespaces {
                        out.push_str(space);
                    } else {
                        out.push(c);
                    }
                }
                prev_space = s.ends_with(' ');
            }
            input = &input[n..];
            if !self.remove_extra_whitespaces {
                prev_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        if self.whitespace_as_suffix && self.add_dummy_prefix {
            out.push_str(space);
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The Unigram model: Viterbi over the pieces that can match, by summed score.

#[derive(Clone, Copy, PartialEq)]
enum Arith {
    /// sentencepiece: f32 sums; user-defined pieces score `len * max_score - 0.1` in f64.
    Spm,
    /// tokenizers: f64 throughout.
    F64,
}

struct Unigram {
    /// Pieces the segmentation may use -> (id, score, user-defined).
    matchable: HashMap<String, (u32, f64, bool)>,
    /// Every piece -> id (token strings to ids).
    all: HashMap<String, u32>,
    /// Longest matchable piece, in bytes.
    max_len: usize,
    unk_id: u32,
    unk_score: f64,
    arith: Arith,
    /// `<0xXX>` ids, when unknown text falls back to bytes.
    bytes: Option<Vec<u32>>,
    size: usize,
}

impl Unigram {
    fn from_spm(p: &ModelProto) -> Result<Unigram, String> {
        CharsMap::parse(&p.charsmap).map_err(|e| format!("spiece.model: {e}"))?;
        let (mut min, mut max) = (f32::MAX, f32::MIN_POSITIVE);
        for (_, s, t) in &p.pieces {
            if *t == PieceType::Normal {
                min = min.min(*s);
                max = max.max(*s);
            }
        }
        if min == f32::MAX {
            min = 0.0;
        }
        if max == f32::MIN_POSITIVE {
            max = 0.0;
        }
        let (mut matchable, mut all, mut unk) = (HashMap::new(), HashMap::new(), None);
        for (id, (piece, score, ty)) in p.pieces.iter().enumerate() {
            let id = id as u32;
            if all.insert(piece.clone(), id).is_some() {
                return Err(format!("spiece.model: piece {piece:?} is defined twice"));
            }
            match ty {
                PieceType::Normal => {
                    matchable.insert(piece.clone(), (id, *score as f64, false));
                }
                PieceType::UserDefined => {
                    matchable.insert(piece.clone(), (id, (piece.len() as f32 * max) as f64 - 0.1, true));
                }
                PieceType::Unknown if unk.is_some() => return Err("spiece.model: more than one unknown piece".into()),
                PieceType::Unknown => unk = Some(id),
                _ => {}
            }
        }
        let unk_id = unk.ok_or("spiece.model has no unknown piece (<unk>)")?;
        let bytes = if p.byte_fallback { Some(byte_ids(&all).ok_or("spiece.model: byte_fallback without all 256 <0xXX> pieces")?) } else { None };
        let max_len = matchable.keys().map(String::len).max().unwrap_or(0);
        Ok(Unigram { matchable, all, max_len, unk_id, unk_score: (min - 10.0) as f64, arith: Arith::Spm, bytes, size: p.pieces.len() })
    }

    fn from_json(pieces: Vec<(String, f64)>, unk: u64, byte_fallback: bool) -> Result<Unigram, String> {
        if pieces.is_empty() {
            return Err("tokenizer.json: the Unigram vocabulary is empty".into());
        }
        if unk as usize >= pieces.len() {
            return Err(format!("tokenizer.json: unk_id {unk} is outside the vocabulary of {}", pieces.len()));
        }
        let min = pieces.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let (mut matchable, mut all) = (HashMap::new(), HashMap::new());
        // A repeated piece keeps the last id, as tokenizers does.
        for (id, (piece, score)) in pieces.iter().enumerate() {
            all.insert(piece.clone(), id as u32);
            if !piece.is_empty() {
                matchable.insert(piece.clone(), (id as u32, *score, false));
            }
        }
        let bytes = if byte_fallback { byte_ids(&all) } else { None };
        let max_len = matchable.keys().map(String::len).max().unwrap_or(0);
        Ok(Unigram { matchable, all, max_len, unk_id: unk as u32, unk_score: min - 10.0, arith: Arith::F64, bytes, size: pieces.len() })
    }

    fn size(&self) -> usize {
        self.size
    }

    /// The best segmentation of `s`: (start, end, id), runs of unknown characters fused
    /// into one (id None).
    fn segment(&self, s: &str) -> Vec<(usize, usize, Option<u32>)> {
        #[derive(Clone, Copy)]
        struct Best {
            score: f64,
            start: usize,
            id: Option<u32>,
        }
        const UNSET: usize = usize::MAX;
        let n = s.len();
        let mut best = vec![Best { score: 0.0, start: UNSET, id: None }; n + 1];
        let spm = self.arith == Arith::Spm;
        let mut start = 0;
        while start < n {
            let here = best[start].score;
            let mblen = s[start..].chars().next().map_or(1, char::len_utf8);
            let mut single = false;
            let offer = |best: &mut Vec<Best>, end: usize, score: f64, id: Option<u32>, wide: bool| {
                // sentencepiece sums in f32, but a user-defined piece's score is a double.
                let cand = if spm && !wide { (score as f32 + here as f32) as f64 } else { score + here };
                let t = &mut best[end];
                if t.start == UNSET || cand > t.score {
                    *t = Best { score: if spm { cand as f32 as f64 } else { cand }, start, id };
                }
            };
            for end in start + 1..=(start + self.max_len).min(n) {
                if !s.is_char_boundary(end) {
                    continue;
                }
                if let Some(&(id, score, wide)) = self.matchable.get(&s[start..end]) {
                    offer(&mut best, end, score, Some(id), wide);
                    single |= end - start == mblen;
                }
            }
            if !single {
                offer(&mut best, start + mblen, self.unk_score, None, false);
            }
            start += mblen;
        }
        let mut out = Vec::new();
        let mut end = n;
        while end > 0 {
            let b = best[end];
            let unk = b.id.is_none() || b.id == Some(self.unk_id);
            match out.last_mut() {
                Some((s0, _, None)) if unk => *s0 = b.start,
                _ => out.push((b.start, end, if unk { None } else { b.id })),
            }
            end = b.start;
        }
        out.reverse();
        out
    }

    /// tokenizers: ids of one word (token strings looked up; unknown runs to bytes or unk).
    fn ids_json(&self, word: &str, out: &mut Vec<u32>) {
        for (a, b, _) in self.segment(word) {
            let t = &word[a..b];
            if let Some(&id) = self.all.get(t) {
                out.push(id);
            } else if let Some(bytes) = &self.bytes {
                out.extend(t.bytes().map(|x| bytes[x as usize]));
            } else {
                out.push(self.unk_id);
            }
        }
    }
}

/// The ids of the 256 byte pieces `<0x00>`..`<0xFF>`, if all exist.
fn byte_ids(all: &HashMap<String, u32>) -> Option<Vec<u32>> {
    (0..256).map(|b| all.get(&format!("<0x{b:02X}>")).copied()).collect()
}

// ---------------------------------------------------------------------------------------
// SiglipTokenizer over an spiece.model.

struct SiglipText {
    normalizer: SpNormalizer,
    lower: bool,
    /// The added (special) tokens, in transformers' all_special_tokens order.
    specials: Vec<(String, u32)>,
    unk_token: String,
    /// Pieces the unk token itself encodes to (SiglipTokenizer encodes `unk + text` and
    /// drops them, so that the text's leading "▁" survives sentencepiece).
    unk_len: usize,
}

/// Python's str.isspace.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

impl SiglipText {
    /// sentencepiece's `encode(text, out_type=str)`: piece strings (unknown runs as their
    /// surface text, or as byte pieces under byte fallback).
    fn sp_encode(&self, model: &Unigram, text: &str) -> Vec<String> {
        let norm = self.normalizer.normalize(text);
        let mut out = Vec::new();
        for (a, b, id) in model.segment(&norm) {
            match (id, &model.bytes) {
                (None, Some(_)) => out.extend(norm[a..b].bytes().map(|x| format!("<0x{x:02X}>"))),
                _ => out.push(norm[a..b].to_string()),
            }
        }
        out
    }

    fn special_at(&self, s: &str) -> Option<&(String, u32)> {
        // Leftmost, then longest (transformers' Trie.split).
        self.specials.iter().filter(|(t, _)| s.starts_with(t.as_str())).max_by_key(|(t, _)| t.len())
    }

    /// Token ids without the end token.
    fn tokens(&self, model: &Unigram, text: &str) -> Vec<u32> {
        let text = format!("\u{2581}{}", text.replace('\u{2581}', " "));
        // Lower-case one character at a time (transformers' regex), sparing special tokens
        // (in all_special_tokens order) and newlines (Python's "." does not match them).
        let text = if self.lower {
            let mut out = String::with_capacity(text.len());
            let mut rest = text.as_str();
            while let Some(c) = rest.chars().next() {
                if let Some((t, _)) = self.specials.iter().find(|(t, _)| rest.starts_with(t.as_str())) {
                    out.push_str(t);
                    rest = &rest[t.len()..];
                    continue;
                }
                if c == '\n' {
                    out.push(c);
                } else {
                    out.extend(c.to_lowercase());
                }
                rest = &rest[c.len_utf8()..];
            }
            out
        } else {
            text
        };
        // Split out the special tokens; each strips the whitespace on both sides.
        let mut parts: Vec<(String, Option<u32>)> = Vec::new();
        let (mut i, mut from) = (0, 0);
        while i < text.len() {
            if let Some((t, id)) = self.special_at(&text[i..]) {
                parts.push((text[from..i].to_string(), None));
                parts.push((t.clone(), Some(*id)));
                i += t.len();
                from = i;
            } else {
                i += text[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
        parts.push((text[from..].to_string(), None));
        for k in 0..parts.len() {
            if parts[k].1.is_some() {
                if let Some(r) = parts.get_mut(k + 1).filter(|r| r.1.is_none()) {
                    r.0 = r.0.trim_start_matches(py_space).to_string();
                }
                if let Some(l) = k.checked_sub(1).and_then(|j| parts.get_mut(j)).filter(|l| l.1.is_none()) {
                    l.0 = l.0.trim_end_matches(py_space).to_string();
                }
            }
        }
        let mut toks: Vec<(String, Option<u32>)> = Vec::new();
        for (s, id) in parts {
            match id {
                Some(id) => toks.push((s, Some(id))),
                None if s.is_empty() => {}
                None => toks.extend(self.chunk(model, &s).into_iter().map(|t| (t, None))),
            }
        }
        if toks.len() > 1 && toks[0].0 == "\u{2581}" && toks[1].1.is_some() {
            toks.remove(0);
        }
        toks.into_iter()
            .map(|(t, id)| {
                id.or_else(|| self.specials.iter().find(|(s, _)| *s == t).map(|s| s.1)).or_else(|| model.all.get(&t).copied()).unwrap_or(model.unk_id)
            })
            .collect()
    }

    /// SiglipTokenizer._tokenize: canonicalise, then encode behind the unk token.
    fn chunk(&self, model: &Unigram, s: &str) -> Vec<String> {
        let mut canon = String::with_capacity(s.len());
        let mut in_space = false;
        for c in s.chars().filter(|c| !c.is_ascii_punctuation()) {
            if py_space(c) {
                if !in_space {
                    canon.push(' ');
                }
                in_space = true;
            } else {
                canon.push(c);
                in_space = false;
            }
        }
        let canon = canon.trim_matches(py_space);
        let pieces = self.sp_encode(model, &format!("{}{canon}", self.unk_token));
        if pieces.len() >= self.unk_len {
            pieces[self.unk_len..].to_vec()
        } else {
            pieces
        }
    }
}

// ---------------------------------------------------------------------------------------
// tokenizer.json pipelines.

struct AddedToken {
    content: String,
    id: u32,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
}

enum Norm {
    Precompiled(CharsMap),
    Replace(Regex, String),
    Lowercase,
    Strip(bool, bool),
    Nfc,
    Nfd,
    Nfkc,
    Nfkd,
    StripAccents,
    Prepend(String),
}

#[derive(Clone, Copy, PartialEq)]
enum Prepend {
    Always,
    First,
    Never,
}

enum PreTok {
    Metaspace { replacement: char, prepend: Prepend, split: bool },
    WhitespaceSplit,
    Whitespace(Regex),
}

struct JsonPipeline {
    added: Vec<AddedToken>,
    norms: Vec<Norm>,
    pre: Vec<PreTok>,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    graphemes: Regex,
}

impl JsonPipeline {
    fn parse(v: &serde_json::Value, model: &Unigram) -> Result<JsonPipeline, String> {
        let mut added = Vec::new();
        for t in v["added_tokens"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let (Some(content), Some(id)) = (t["content"].as_str(), t["id"].as_u64()) else {
                return Err("tokenizer.json: an added token lacks content or id".into());
            };
            if content.is_empty() {
                continue;
            }
            let flag = |k: &str| t[k].as_bool().unwrap_or(false);
            added.push(AddedToken { content: content.into(), id: id as u32, lstrip: flag("lstrip"), rstrip: flag("rstrip"), normalized: flag("normalized") });
        }
        let mut norms = Vec::new();
        parse_normalizer(&v["normalizer"], &mut norms)?;
        let mut pre = Vec::new();
        parse_pre_tokenizer(&v["pre_tokenizer"], &mut pre)?;
        let (mut prefix, mut suffix) = (Vec::new(), Vec::new());
        let post = &v["post_processor"];
        match post["type"].as_str() {
            None if post.is_null() => {}
            Some("TemplateProcessing") => {
                let single = post["single"].as_array().ok_or("tokenizer.json: TemplateProcessing has no single template")?;
                let mut seen_a = false;
                for item in single {
                    if item.get("Sequence").is_some() {
                        seen_a = true;
                    } else if let Some(name) = item["SpecialToken"]["id"].as_str() {
                        let ids = post["special_tokens"][name]["ids"]
                            .as_array()
                            .ok_or_else(|| format!("tokenizer.json: template token {name:?} is not in special_tokens"))?;
                        let ids: Vec<u32> =
                            ids.iter().map(|i| i.as_u64().map(|i| i as u32)).collect::<Option<_>>().ok_or("tokenizer.json: bad special token ids")?;
                        if seen_a { &mut suffix } else { &mut prefix }.extend(ids);
                    } else {
                        return Err(format!("tokenizer.json: unsupported template item {item}"));
                    }
                }
            }
            other => return Err(format!("tokenizer.json: unsupported post_processor {}", other.unwrap_or("?"))),
        }
        for &id in added.iter().map(|a| &a.id).chain(&prefix).chain(&suffix) {
            if id as usize >= model.size() {
                return Err(format!("tokenizer.json: token id {id} is outside the vocabulary of {}", model.size()));
            }
        }
        // Extended grapheme clusters, closely enough for the Precompiled normaliser: CR LF,
        // a control (format characters included) alone, a regional-indicator pair, a Hangul syllable sequence, or a
        // character with its combining marks, joiners (an emoji after a ZWJ), variation selectors
        // and modifiers.
        let graphemes = Regex::new(concat!(
            r"^(?s:\r\n",
            r"|[\p{Cc}\p{Zl}\p{Zp}\p{Cf}--[\x{200C}\x{200D}\x{600}-\x{605}\x{6DD}\x{70F}\x{890}\x{891}\x{8E2}\x{110BD}\x{110CD}\x{E0020}-\x{E007F}]]",
            r"|[\x{1F1E6}-\x{1F1FF}]{2}",
            // Hangul: L* (LV|LVT) V* T*, L* V+ T*, L+.
            r"|[\x{1100}-\x{115F}\x{A960}-\x{A97C}]*(?:[\x{AC00}-\x{D7A3}][\x{1160}-\x{11A7}\x{D7B0}-\x{D7C6}]*|[\x{1160}-\x{11A7}\x{D7B0}-\x{D7C6}]+)[\x{11A8}-\x{11FF}\x{D7CB}-\x{D7FB}]*",
            r"|[\x{1100}-\x{115F}\x{A960}-\x{A97C}]+",
            r"|.(?:[\p{M}\x{200C}\x{1F3FB}-\x{1F3FF}\x{E0020}-\x{E007F}]|\x{200D}[\x{2600}-\x{27BF}\x{1F000}-\x{1FAFF}]?)*)",
        ))
        .map_err(|e| e.to_string())?;
        Ok(JsonPipeline { added, norms, pre, prefix, suffix, graphemes })
    }

    /// Token ids without the template's tokens.
    fn tokens(&self, model: &Unigram, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for (seg, offset) in split_added(text, self.added.iter().filter(|a| !a.normalized)) {
            match seg {
                Seg::Token(id) => ids.push(id),
                Seg::Text(s) => {
                    let first = offset == 0 && !s.starts_with(char::is_whitespace);
                    let norm = self.normalize(s);
                    for (sub, off2) in split_added(&norm, self.added.iter().filter(|a| a.normalized)) {
                        match sub {
                            Seg::Token(id) => ids.push(id),
                            Seg::Text(w) => {
                                for word in self.pre_tokenize(w, first && off2 == 0) {
                                    model.ids_json(&word, &mut ids);
                                }
                            }
                        }
                    }
                }
            }
        }
        ids
    }

    fn normalize(&self, s: &str) -> String {
        let mut s = s.to_string();
        for n in &self.norms {
            s = match n {
                Norm::Precompiled(map) => {
                    // tokenizers' rule: a grapheme under 6 bytes is replaced whole by the
                    // first rule matching its start; otherwise character by character.
                    let mut out = String::with_capacity(s.len());
                    let mut rest = s.as_str();
                    while !rest.is_empty() {
                        let g = self.graphemes.find(rest).map_or(0, |m| m.end()).max(rest.chars().next().map_or(1, char::len_utf8));
                        let grapheme = &rest[..g];
                        match map.first(grapheme).filter(|_| g < 6) {
                            Some(r) => out.push_str(r),
                            None => {
                                for (i, c) in grapheme.char_indices() {
                                    out.push_str(map.first(&grapheme[i..i + c.len_utf8()]).unwrap_or(&grapheme[i..i + c.len_utf8()]));
                                }
                            }
                        }
                        rest = &rest[g..];
                    }
                    out
                }
                Norm::Replace(re, content) => re.replace_all(&s, regex::NoExpand(content)).into_owned(),
                Norm::Lowercase => s.chars().flat_map(char::to_lowercase).collect(),
                Norm::Strip(l, r) => {
                    let t = if *l { s.trim_start() } else { &s };
                    (if *r { t.trim_end() } else { t }).to_string()
                }
                Norm::Nfc => s.nfc().collect(),
                Norm::Nfd => s.nfd().collect(),
                Norm::Nfkc => s.nfkc().collect(),
                Norm::Nfkd => s.nfkd().collect(),
                Norm::StripAccents => s.chars().filter(|&c| !unicode_normalization::char::is_combining_mark(c)).collect(),
                Norm::Prepend(p) if !s.is_empty() => format!("{p}{s}"),
                Norm::Prepend(_) => s,
            };
        }
        s
    }

    /// The words of one normalised segment. `first`: the segment starts the text (for
    /// Metaspace's "first" scheme; tokenizers checks the normalised text's first original
    /// offset, approximated here as "the raw segment starts the text, not with whitespace").
    fn pre_tokenize(&self, s: &str, first: bool) -> Vec<String> {
        let mut words = vec![s.to_string()];
        for p in &self.pre {
            let mut next = Vec::new();
            for (wi, w) in words.iter().enumerate() {
                match p {
                    PreTok::Metaspace { replacement, prepend, split } => {
                        let mut w: String = w.chars().map(|c| if c == ' ' { *replacement } else { c }).collect();
                        let add = match prepend {
                            Prepend::Always => true,
                            Prepend::First => first && wi == 0,
                            Prepend::Never => false,
                        };
                        if add && !w.starts_with(*replacement) {
                            w.insert(0, *replacement);
                        }
                        if *split {
                            // Each replacement character starts a new word.
                            let mut cur = String::new();
                            for c in w.chars() {
                                if c == *replacement && !cur.is_empty() {
                                    next.push(std::mem::take(&mut cur));
                                }
                                cur.push(c);
                            }
                            if !cur.is_empty() {
                                next.push(cur);
                            }
                        } else if !w.is_empty() {
                            next.push(w);
                        }
                    }
                    PreTok::WhitespaceSplit => next.extend(w.split_whitespace().map(str::to_string)),
                    PreTok::Whitespace(re) => next.extend(re.find_iter(w).map(|m| m.as_str().to_string())),
                }
            }
            words = next;
        }
        words.retain(|w| !w.is_empty());
        words
    }
}

enum Seg<'a> {
    Text(&'a str),
    Token(u32),
}

/// Split `text` on added tokens (leftmost, then longest), each taking the whitespace beside
/// it when it strips; text segments carry their byte offset.
fn split_added<'a, 'b>(text: &'a str, tokens: impl Iterator<Item = &'b AddedToken> + Clone) -> Vec<(Seg<'a>, usize)> {
    let mut out = Vec::new();
    let (mut from, mut i) = (0, 0);
    while i < text.len() {
        let hit = tokens.clone().filter(|t| text[i..].starts_with(t.content.as_str())).max_by_key(|t| t.content.len());
        let Some(t) = hit else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let mut start = i;
        if t.lstrip {
            start = from + text[from..i].trim_end().len();
        }
        let mut end = i + t.content.len();
        if t.rstrip {
            end = text.len() - text[end..].trim_start().len();
        }
        if start > from {
            out.push((Seg::Text(&text[from..start]), from));
        }
        out.push((Seg::Token(t.id), start));
        from = end;
        i = end;
    }
    if from < text.len() {
        out.push((Seg::Text(&text[from..]), from));
    }
    out
}

/// Rust's regex rejects some escapes Oniguruma accepts (`\<`, `\!`): write every escaped
/// ASCII punctuation character as a hex escape.
fn onig_to_rust(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e) if e.is_ascii_punctuation() => out.push_str(&format!("\\x{{{:X}}}", e as u32)),
            Some(e) => {
                out.push('\\');
                out.push(e);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn parse_normalizer(v: &serde_json::Value, out: &mut Vec<Norm>) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    let ty = v["type"].as_str().ok_or("tokenizer.json: a normalizer has no type")?;
    let n = match ty {
        "Sequence" => {
            for n in v["normalizers"].as_array().ok_or("tokenizer.json: Sequence normalizer without normalizers")? {
                parse_normalizer(n, out)?;
            }
            return Ok(());
        }
        "Precompiled" => {
            let b64 = v["precompiled_charsmap"].as_str().unwrap_or("");
            let blob = base64_decode(b64).ok_or("tokenizer.json: precompiled_charsmap is not base64")?;
            match CharsMap::parse(&blob).map_err(|e| format!("tokenizer.json: {e}"))? {
                Some(m) => Norm::Precompiled(m),
                None => return Ok(()),
            }
        }
        "Replace" => {
            let content = v["content"].as_str().ok_or("tokenizer.json: Replace without content")?.to_string();
            let re = match (v["pattern"]["String"].as_str(), v["pattern"]["Regex"].as_str()) {
                (Some(s), _) => Regex::new(&regex::escape(s)),
                (_, Some(r)) => Regex::new(&onig_to_rust(r)),
                _ => return Err("tokenizer.json: Replace without a String or Regex pattern".into()),
            }
            .map_err(|e| format!("tokenizer.json: Replace pattern: {e}"))?;
            Norm::Replace(re, content)
        }
        "Lowercase" => Norm::Lowercase,
        "Strip" => Norm::Strip(v["strip_left"].as_bool().unwrap_or(false), v["strip_right"].as_bool().unwrap_or(false)),
        "NFC" => Norm::Nfc,
        "NFD" => Norm::Nfd,
        "NFKC" => Norm::Nfkc,
        "NFKD" => Norm::Nfkd,
        "StripAccents" => Norm::StripAccents,
        "Prepend" => Norm::Prepend(v["prepend"].as_str().unwrap_or("").to_string()),
        t => return Err(format!("tokenizer.json: unsupported normalizer {t}")),
    };
    out.push(n);
    Ok(())
}

fn parse_pre_tokenizer(v: &serde_json::Value, out: &mut Vec<PreTok>) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    let ty = v["type"].as_str().ok_or("tokenizer.json: a pre_tokenizer has no type")?;
    let p = match ty {
        "Sequence" => {
            for p in v["pretokenizers"].as_array().ok_or("tokenizer.json: Sequence pre_tokenizer without pretokenizers")? {
                parse_pre_tokenizer(p, out)?;
            }
            return Ok(());
        }
        "Metaspace" => {
            let replacement = v["replacement"].as_str().and_then(|r| r.chars().next()).unwrap_or('\u{2581}');
            let prepend = match (v["prepend_scheme"].as_str(), v["add_prefix_space"].as_bool()) {
                (Some("always"), _) => Prepend::Always,
                (Some("first"), _) => Prepend::First,
                (Some("never"), _) => Prepend::Never,
                (Some(s), _) => return Err(format!("tokenizer.json: unknown Metaspace prepend_scheme {s}")),
                (None, Some(false)) => Prepend::Never,
                (None, _) => Prepend::Always,
            };
            PreTok::Metaspace { replacement, prepend, split: v["split"].as_bool().unwrap_or(true) }
        }
        "WhitespaceSplit" => PreTok::WhitespaceSplit,
        "Whitespace" => PreTok::Whitespace(Regex::new(r"\w+|[^\w\s]+").map_err(|e| e.to_string())?),
        t => return Err(format!("tokenizer.json: unsupported pre_tokenizer {t}")),
    };
    out.push(p);
    Ok(())
}

fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            out.push(if k <= c.len() { A[((n >> (18 - 6 * k)) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// Standard base64 (padding optional); None on a character outside the alphabet.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in s.as_bytes().iter().filter(|c| !c.is_ascii_whitespace() && **c != b'=') {
        acc = (acc << 6) | val(c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
