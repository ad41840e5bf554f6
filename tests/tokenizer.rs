//! The CLIP BPE tokenizer against transformers' CLIPTokenizerFast (OWL-ViT settings:
//! padding to 16, truncation) on a dozen strings: case, punctuation (including OWL's pad
//! token "!"), contractions, whitespace runs, accents (NFC, byte-level), CJK, emoji,
//! words split into several pieces, truncation, empty input. The vocabulary is a reduced
//! CLIP vocabulary built by weights-tools/python/gen_tokenizer_fixtures.py.
mod common;
use common::*;
use wgvision::tokenizer::ClipTokenizer;

fn check(tok: &ClipTokenizer) {
    check_cases(tok, "cases.json");
}

fn check_cases(tok: &ClipTokenizer, file: &str) {
    let text = std::fs::read_to_string(fixtures().join("clip_tokenizer").join(file)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let max_len = v["max_length"].as_u64().unwrap() as usize;
    assert_eq!(tok.pad_id() as u64, v["pad_id"].as_u64().unwrap());
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 12);
    for c in cases {
        let s = c["text"].as_str().unwrap();
        let want_ids: Vec<u32> = c["input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let want_mask: Vec<u32> = c["attention_mask"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let (ids, mask) = tok.encode_padded(s, max_len);
        assert_eq!(ids, want_ids, "{s:?}: tokens {:?}", c["tokens"]);
        assert_eq!(mask, want_mask, "{s:?}");
    }
}

#[test]
fn clip_bpe_matches_transformers_from_tokenizer_json() {
    check(&ClipTokenizer::load(&fixtures().join("clip_tokenizer/tokenizer.json")).unwrap());
}

#[test]
fn clip_bpe_matches_transformers_from_vocab_and_merges() {
    let dir = temp_dir("tok_vocab_merges");
    for f in ["vocab.json", "merges.txt"] {
        std::fs::copy(fixtures().join("clip_tokenizer").join(f), dir.join(f)).unwrap();
    }
    check(&ClipTokenizer::load(&dir).unwrap());
}

/// OpenAI CLIP's full vocabulary, rebuilt from its merges file: the well-known ids
/// ("a photo of a cat" -> 49406 320 1125 539 320 2368 49407) and the same 14 strings.
#[test]
fn clip_bpe_full_vocabulary_from_openai_merges() {
    let merges = std::fs::read_to_string(fixtures().join("clip_tokenizer/clip_merges.txt")).unwrap();
    let tok = ClipTokenizer::from_clip_merges(&merges).unwrap();
    assert_eq!(tok.encode("a photo of a cat"), vec![49406, 320, 1125, 539, 320, 2368, 49407]);
    check_cases(&tok, "cases_full_vocab.json");
    // The same through `load` on the .txt file.
    let loaded = ClipTokenizer::load(&fixtures().join("clip_tokenizer/clip_merges.txt")).unwrap();
    check_cases(&loaded, "cases_full_vocab.json");
}

#[test]
fn missing_or_bad_vocabulary_is_a_clear_error() {
    let dir = temp_dir("tok_bad");
    let e = ClipTokenizer::load(&dir).err().expect("empty directory");
    assert!(e.to_string().contains("vocab.json"), "{e}");
    std::fs::write(dir.join("tokenizer.json"), "{\"model\": {\"type\": \"WordPiece\"}}").unwrap();
    let e = ClipTokenizer::load(&dir.join("tokenizer.json")).err().expect("not BPE");
    assert!(e.to_string().contains("BPE"), "{e}");
}
