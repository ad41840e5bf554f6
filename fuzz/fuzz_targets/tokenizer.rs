//! The tokenizer files (tokenizer.json; vocab.json + merges.txt; CLIP's merges file alone)
//! and tokenizing text with the loaded tokenizer (`run --query`). Any files must give a
//! tokenizer or an error, and any text must tokenize without a panic or a hang.
//!
//! Input layout: the first byte picks the mode (mod 4); the rest is split at 0xFF bytes
//! (never part of UTF-8 text) into the files of that mode, then texts to tokenize.
//!   0: tokenizer.json, texts...     1: vocab.json, merges.txt, texts...
//!   2: clip_merges.txt, texts...    3: texts... for the committed test tokenizer
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use wgvision::tokenizer::ClipTokenizer;

/// The test suite's tokenizer (4000 merges), so that mode 3 tokenizes with real merges.
fn fixture() -> Option<&'static ClipTokenizer> {
    static TOK: OnceLock<Option<ClipTokenizer>> = OnceLock::new();
    TOK.get_or_init(|| {
        let json = include_str!("../../tests/fixtures/clip_tokenizer/tokenizer.json");
        ClipTokenizer::from_files(&[("tokenizer.json".into(), json.into())]).ok()
    })
    .as_ref()
}

fn tokenize(tok: &ClipTokenizer, texts: &[String]) {
    for (i, text) in texts.iter().enumerate() {
        let ids = tok.encode(text);
        assert!(ids.len() >= 2);
        let max_len = [16, 1, 0, 77][i % 4];
        let (ids, mask) = tok.encode_padded(text, max_len);
        assert_eq!((ids.len(), mask.len()), (max_len, max_len));
    }
    let _ = tok.pad_id();
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let parts: Vec<String> = rest.split(|&b| b == 0xFF).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    let files = |names: &[&str]| -> Vec<(String, String)> { names.iter().zip(&parts).map(|(n, t)| (n.to_string(), t.clone())).collect() };
    let (tok, texts) = match mode % 4 {
        0 => (ClipTokenizer::from_files(&files(&["tokenizer.json"])).ok(), parts.get(1..)),
        1 => (ClipTokenizer::from_files(&files(&["vocab.json", "merges.txt"])).ok(), parts.get(2..)),
        2 => (ClipTokenizer::from_files(&files(&["clip_merges.txt"])).ok(), parts.get(1..)),
        _ => {
            if let Some(tok) = fixture() {
                tokenize(tok, &parts);
            }
            return;
        }
    };
    if let (Some(tok), Some(texts)) = (tok, texts) {
        tokenize(&tok, texts);
    }
});
