//! The SigLIP SentencePiece tokenizer against transformers (fixtures from
//! weights-tools/python/gen_siglip_tokenizer_fixtures.py): SiglipTokenizer as SiglipProcessor
//! calls it (padding to 64, truncation) on two spiece.model files (one with sentencepiece's
//! nmt_nfkc charsmap, as SigLIP's), and tokenizers' fast pipeline on a tokenizer.json of the
//! smaller one, on two dozen strings: case, punctuation, digits, whitespace runs, accents
//! precomposed and combining, compatibility characters, zero-width and no-break spaces,
//! unknown characters (CJK, emoji, fused), a literal "▁", special tokens inside the text,
//! empty input, truncation. Then bad input.
mod common;
use common::*;
use wgvision::sentencepiece::SentencePieceTokenizer;
use wgvision::tokenizer::TextTokenizer;

fn cases() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("siglip_tokenizer/cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// Every case's ids (and mask, where recorded) under `ids_key` / `mask_key` equal
/// transformers'.
fn check(tok: &SentencePieceTokenizer, ids_key: &str, mask_key: Option<&str>) {
    let v = cases();
    let max_len = v["max_length"].as_u64().unwrap() as usize;
    assert_eq!(tok.pad_id() as u64, v["pad_id"].as_u64().unwrap());
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 12);
    let mut failed = Vec::new();
    for c in cases {
        let s = c["text"].as_str().unwrap();
        let want_ids = ids(&c[ids_key]);
        let (got, mask) = tok.encode_padded(s, max_len);
        let want_mask = mask_key.map(|k| ids(&c[k]));
        if got != want_ids || want_mask.as_ref().is_some_and(|m| *m != mask) {
            failed.push(format!("{s:?}\n  got  {got:?} mask {mask:?}\n  want {want_ids:?} mask {want_mask:?}\n  (tokens {})", c["tokens"]));
        }
        // Unpadded: the same ids up to the end token (shorter texts only).
        let n = mask.iter().filter(|&&m| m == 1).count();
        assert_eq!(mask, [vec![1; n], vec![0; max_len - n]].concat(), "{s:?}");
        if n < max_len {
            assert_eq!(tok.encode(s), got[..n], "{s:?} unpadded");
        }
    }
    assert!(failed.is_empty(), "{} of {} cases differ from transformers:\n{}", failed.len(), cases.len(), failed.join("\n"));
}

#[test]
fn siglip_spiece_model_matches_transformers() {
    let tok = SentencePieceTokenizer::load(&fixtures().join("siglip_tokenizer/spiece.model")).unwrap();
    let v = cases();
    assert_eq!(tok.vocab_size() as u64, v["vocab_size"].as_u64().unwrap());
    assert_eq!(tok.eos_id().map(u64::from), v["eos_id"].as_u64());
    assert_eq!(tok.unk_id() as u64, v["unk_id"].as_u64().unwrap());
    check(&tok, "input_ids", Some("attention_mask"));
    // The directory form finds spiece.model.
    let dir = SentencePieceTokenizer::load(&fixtures().join("siglip_tokenizer")).unwrap();
    assert_eq!(dir.encode("a photo of a cat"), tok.encode("a photo of a cat"));
}

#[test]
fn siglip_small_spiece_model_matches_transformers() {
    let tok = SentencePieceTokenizer::load(&fixtures().join("siglip_tokenizer/small/spiece.model")).unwrap();
    assert_eq!(tok.vocab_size() as u64, cases()["small_vocab_size"].as_u64().unwrap());
    check(&tok, "small_input_ids", None);
}

/// A tokenizer_config.json beside the model with `do_lower_case: false`.
#[test]
fn siglip_cased_from_tokenizer_config_matches_transformers() {
    let dir = temp_dir("siglip_tok_cased");
    std::fs::copy(fixtures().join("siglip_tokenizer/small/spiece.model"), dir.join("spiece.model")).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"do_lower_case": false, "eos_token": "</s>", "pad_token": {"content": "</s>"}}"#).unwrap();
    let tok = SentencePieceTokenizer::load(&dir).unwrap();
    check(&tok, "small_cased_input_ids", None);
    assert_ne!(tok.encode("A CAT"), tok.encode("a cat"));
}

/// Byte fallback: unknown characters become their UTF-8 bytes' <0xXX> pieces.
#[test]
fn byte_fallback_spiece_model_matches_transformers() {
    let tok = SentencePieceTokenizer::load(&fixtures().join("siglip_tokenizer/bytes/spiece.model")).unwrap();
    assert_eq!(tok.vocab_size() as u64, cases()["bytes_vocab_size"].as_u64().unwrap());
    check(&tok, "bytes_input_ids", None);
    let (ids, _) = tok.encode_padded("\u{6771}", 64);
    assert!(!ids.contains(&tok.unk_id()), "{ids:?}");
}

/// tokenizers' fast pipeline on the tokenizer.json of a model.
fn check_json(model: &str) {
    let tok = SentencePieceTokenizer::load(&fixtures().join(format!("siglip_tokenizer/{model}/tokenizer.json"))).unwrap();
    check(&tok, &format!("{model}_fast_input_ids"), Some(&format!("{model}_fast_attention_mask")));
    // Where the fast pipeline agrees with SiglipTokenizer, so does this one.
    let v = cases();
    let differ: Vec<&str> = v["fast_differs_from_slow"][model].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    for c in v["cases"].as_array().unwrap() {
        if !differ.contains(&c["text"].as_str().unwrap()) {
            assert_eq!(ids(&c[format!("{model}_fast_input_ids")]), ids(&c[format!("{model}_input_ids")]));
        }
    }
}

#[test]
fn unigram_tokenizer_json_matches_tokenizers() {
    check_json("small");
}

#[test]
fn byte_fallback_tokenizer_json_matches_tokenizers() {
    check_json("bytes");
}

#[test]
fn usable_through_the_shared_trait() {
    let tok = SentencePieceTokenizer::load(&fixtures().join("siglip_tokenizer/spiece.model")).unwrap();
    let dynamic: &dyn TextTokenizer = &tok;
    let (ids, mask) = dynamic.encode_padded("a photo of a cat", 64);
    assert_eq!((ids.len(), mask.len()), (64, 64));
    assert_eq!(*ids.last().unwrap(), dynamic.pad_id());
    assert_eq!(dynamic.encode("a photo of a cat"), ids[..mask.iter().sum::<u32>() as usize]);
    // Truncation keeps the end token; short limits stay within bounds.
    let long = "a cat ".repeat(100);
    let (ids, mask) = tok.encode_padded(&long, 8);
    assert_eq!(ids.len(), 8);
    assert_eq!(ids[7], tok.eos_id().unwrap());
    assert_eq!(mask, vec![1; 8]);
    for n in 0..3 {
        assert_eq!(tok.encode_padded(&long, n).0.len(), n);
    }
}

/// Stored in a model file as texts (`read_files`), rebuilt by `from_files`: the same ids.
#[test]
fn read_files_round_trip() {
    let s = "A Photo, of a Caf\u{e9}!";
    for path in ["siglip_tokenizer/spiece.model", "siglip_tokenizer/bytes", "siglip_tokenizer/small/tokenizer.json"] {
        let path = fixtures().join(path);
        let files = SentencePieceTokenizer::read_files(&path).unwrap();
        assert!(SentencePieceTokenizer::handles(&files), "{}", path.display());
        let tok = SentencePieceTokenizer::from_files(&files).unwrap();
        assert_eq!(tok.encode_padded(s, 64), SentencePieceTokenizer::load(&path).unwrap().encode_padded(s, 64));
    }
    let dir = temp_dir("siglip_tok_files");
    std::fs::copy(fixtures().join("siglip_tokenizer/small/spiece.model"), dir.join("spiece.model")).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"do_lower_case": false}"#).unwrap();
    let files = SentencePieceTokenizer::read_files(&dir).unwrap();
    assert!(files.iter().any(|(n, _)| n == "tokenizer_config.json"));
    let tok = SentencePieceTokenizer::from_files(&files).unwrap();
    assert_ne!(tok.encode("A CAT"), tok.encode("a cat"));
    // CLIP's BPE tokenizer.json is not one of these.
    let clip = wgvision::tokenizer::ClipTokenizer::read_files(&fixtures().join("clip_tokenizer/tokenizer.json")).unwrap();
    assert!(!SentencePieceTokenizer::handles(&clip));
    let e = SentencePieceTokenizer::from_files(&clip).err().unwrap();
    assert!(e.contains("not Unigram"), "{e}");
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn load_err(path: &std::path::Path) -> String {
    match SentencePieceTokenizer::load(path) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

/// A protobuf ModelProto with these (piece, score, type) entries.
fn model_proto(pieces: &[(&str, f32, u8)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (p, s, t) in pieces {
        let mut m = vec![0x0a, p.len() as u8];
        m.extend(p.as_bytes());
        m.push(0x15);
        m.extend(s.to_le_bytes());
        m.extend([0x18, *t]);
        out.push(0x0a);
        out.push(m.len() as u8);
        out.extend(m);
    }
    out
}

#[test]
fn bad_tokenizer_files_are_clear_errors() {
    let dir = temp_dir("siglip_tok_bad");
    let e = load_err(&dir);
    assert!(e.contains("spiece.model or tokenizer.json"), "{e}");
    let e = load_err(&dir.join("missing.model"));
    assert!(e.contains("missing.model"), "{e}");

    // tokenizer.json: malformed, not Unigram, empty vocabulary, no unk, unk out of range,
    // an unsupported step, a bad charsmap.
    let json = |name: &str, text: &str| write(&dir, name, text.as_bytes());
    for (name, text, want) in [
        ("a.json", "{\"model\": ", "not JSON"),
        ("b.json", r#"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#, "not Unigram"),
        ("c.json", r#"{"model": {"type": "Unigram", "unk_id": 0, "vocab": []}}"#, "empty"),
        ("d.json", r#"{"model": {"type": "Unigram", "unk_id": null, "vocab": [["<unk>", 0.0], ["a", -1.0]]}}"#, "no unk_id"),
        ("e.json", r#"{"model": {"type": "Unigram", "unk_id": 5, "vocab": [["<unk>", 0.0]]}}"#, "outside the vocabulary"),
        (
            "f.json",
            r#"{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]}, "normalizer": {"type": "BertNormalizer"}}"#,
            "unsupported normalizer",
        ),
        ("g.json", r#"{"model": {"type": "Unigram", "unk_id": 0, "vocab": ["<unk>"]}}"#, "[piece, score]"),
        (
            "h.json",
            r#"{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]}, "normalizer": {"type": "Precompiled", "precompiled_charsmap": "/////w=="}}"#,
            "charsmap",
        ),
        (
            "i.json",
            r#"{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]}, "normalizer": {"type": "Precompiled", "precompiled_charsmap": "no base64!"}}"#,
            "base64",
        ),
    ] {
        let e = load_err(&json(name, text));
        assert!(e.contains(want) && e.contains(name), "{name}: {e}");
    }

    // spiece.model: not a protobuf, truncated, empty, no unknown piece, no </s>, not Unigram,
    // a duplicate piece.
    let good = model_proto(&[("<pad>", 0.0, 3), ("</s>", 0.0, 3), ("<unk>", 0.0, 2), ("\u{2581}a", -1.0, 1), ("a", -2.0, 1)]);
    let e = load_err(&write(&dir, "text.model", b"hello world, not a protobuf"));
    assert!(e.contains("ModelProto") && e.contains("text.model"), "{e}");
    let e = load_err(&write(&dir, "trunc.model", &good[..good.len() - 3]));
    assert!(e.contains("ModelProto"), "{e}");
    let e = load_err(&write(&dir, "empty.model", b""));
    assert!(e.contains("no pieces"), "{e}");
    let e = load_err(&write(&dir, "nounk.model", &model_proto(&[("</s>", 0.0, 3), ("a", -1.0, 1)])));
    assert!(e.contains("unk"), "{e}");
    let e = load_err(&write(&dir, "noeos.model", &model_proto(&[("<unk>", 0.0, 2), ("a", -1.0, 1)])));
    assert!(e.contains("</s>"), "{e}");
    let mut bpe = good.clone();
    bpe.extend([0x12, 0x02, 0x18, 0x02]); // trainer_spec { model_type: BPE }
    let e = load_err(&write(&dir, "bpe.model", &bpe));
    assert!(e.contains("not Unigram"), "{e}");
    let e = load_err(&write(&dir, "dup.model", &model_proto(&[("</s>", 0.0, 3), ("<unk>", 0.0, 2), ("a", -1.0, 1), ("a", -2.0, 1)])));
    assert!(e.contains("twice"), "{e}");

    // The hand-made model works: "A a" -> ▁a ▁a </s>, unknown characters fused.
    let tok = SentencePieceTokenizer::load(&write(&dir, "good.model", &good)).unwrap();
    assert_eq!(tok.encode("A, a!"), vec![3, 3, 1]);
    assert_eq!(tok.encode("a\u{6771}\u{4eac}a"), vec![3, 2, 4, 1]);
    assert_eq!(tok.encode(""), vec![1]);
}
