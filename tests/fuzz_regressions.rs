//! Inputs the fuzz targets (fuzz/fuzz_targets/) found to hang, overflow or panic, fed
//! through the same library entry points: each must now give a clear error (or a sane
//! value). No GPU needed.
use wgvision::tokenizer::ClipTokenizer;
use wgvision::{ModelConfig, ModelFile};

const VIT: &str = include_str!("../fuzz/corpus/model_file/vit.config.json");
const SWIN: &str = include_str!("../fuzz/corpus/model_file/swin.config.json");

/// A model file holding only the metadata, with `config` as its config (as the
/// model_file target wraps a config).
fn model_file(config: &serde_json::Value) -> ModelFile {
    let header = serde_json::json!({"__metadata__": {"wgvision.format": "1", "wgvision.config": config.to_string()}}).to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    ModelFile::from_bytes(bytes, "fuzz.safetensors").expect("the config parses")
}

fn edit(base: &str, f: impl FnOnce(&mut serde_json::Value)) -> ModelConfig {
    let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
    f(&mut v);
    model_file(&v).config
}

fn build_error(config: &ModelConfig) -> String {
    match config.build(config.min_batch()) {
        Ok(g) => panic!("built a graph of {} tensors", g.tensors.len()),
        Err(e) => e.to_string(),
    }
}

/// model_file timeout: `"depth": 2222222222222` built blocks until memory ran out (and
/// every tensor added scanned all earlier ones for its name).
#[test]
fn fuzz_model_file_huge_depth_is_refused() {
    let config = edit(VIT, |c| c["depth"] = 2222222222222u64.into());
    let t = std::time::Instant::now();
    let err = build_error(&config);
    assert!(err.contains("more than 65536 tensors"), "{err}");
    assert!(t.elapsed().as_secs() < 10, "took {:?}", t.elapsed());
}

/// model_file panic (overflow in `Graph::flops`): a Swin `mlp_ratio` of 4.2e20 gave an MLP
/// weight of [16, usize::MAX]. Such a tensor is now refused while the graph is built.
#[test]
fn fuzz_model_file_huge_mlp_ratio_is_refused() {
    let config = edit(SWIN, |c| c["mlp_ratio"] = 418446744073709551615.0f64.into());
    let err = build_error(&config);
    assert!(err.contains("more than 2^48 elements"), "{err}");
}

/// The same overflow within the tensor bound: a ViT of 2^40 tokens (a 2^20-pixel square
/// image in 1-pixel patches) builds, and its attention FLOPs (2^82) saturate.
#[test]
fn fuzz_model_file_flops_saturate() {
    let config = edit(VIT, |c| {
        c["img_size"] = serde_json::json!([1 << 20, 1 << 20]);
        c["patch_size"] = 1.into();
        c["embed_dim"] = 3.into();
        c["num_heads"] = 1.into();
        c["mlp_hidden"] = 3.into();
        c["depth"] = 1.into();
    });
    let graph = config.build(1).expect("every tensor is under 2^48 elements");
    assert_eq!(graph.flops(), u64::MAX);
}

/// tokenizer timeout: an added token whose content is "" matched at every position
/// without consuming text, so tokenizing looped forever, growing its output.
#[test]
fn fuzz_tokenizer_empty_added_token_is_ignored() {
    let json = include_str!("fixtures/clip_tokenizer/tokenizer.json");
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({"id": 5, "content": "", "normalized": false}));
    let with_empty = ClipTokenizer::from_files(&[("tokenizer.json".into(), v.to_string())]).unwrap();
    let plain = ClipTokenizer::from_files(&[("tokenizer.json".into(), json.into())]).unwrap();
    for text in ["a photo of a cat!", ""] {
        assert_eq!(with_empty.encode(text), plain.encode(text));
        assert_eq!(with_empty.encode_padded(text, 16), plain.encode_padded(text, 16));
    }
}
