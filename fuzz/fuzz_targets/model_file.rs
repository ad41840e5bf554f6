//! The model-file loader: the safetensors header, the `wgvision.format` / `wgvision.config`
//! metadata, the config JSON and stored files, then what `Model::from_file` and
//! `wgvision inspect` do with a loaded file before any GPU work: build the config's graph,
//! compute its constants and FLOPs. A hostile config (huge or zero sizes) must give an
//! error, never a panic, a hang or an unbounded allocation.
//!
//! Each input is tried twice: as a whole model file, and, when it starts with '{', as the
//! config JSON alone inside a valid file, so that mutations of the config are not lost to
//! a header length that no longer matches.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wgvision::tokenizer::ClipTokenizer;
use wgvision::ModelFile;

fn load(bytes: Vec<u8>) {
    let Ok(file) = ModelFile::from_bytes(bytes, "fuzz.safetensors") else { return };
    let _ = file.tensor_list();
    let _ = file.parameter_count();
    for name in file.tensor_names() {
        let _ = file.get(name);
    }
    if !file.files.is_empty() {
        let _ = ClipTokenizer::from_files(&file.files);
    }
    let config = &file.config;
    let _ = (config.preprocess(), config.image_input(1), config.name(), config.to_json());
    if let Ok(graph) = config.build(config.min_batch()) {
        let _ = graph.flops();
        for w in graph.weights() {
            let _ = config.constant(&w.name);
        }
    }
}

/// A model file holding only the metadata, with `config` as the config JSON.
fn wrap_config(config: &[u8]) -> Option<Vec<u8>> {
    let config = std::str::from_utf8(config).ok()?;
    let header = serde_json::json!({"__metadata__": {"wgvision.format": "1", "wgvision.config": config}}).to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    Some(bytes)
}

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&b'{') {
        if let Some(wrapped) = wrap_config(data) {
            load(wrapped);
        }
    }
    load(data.to_vec());
});
