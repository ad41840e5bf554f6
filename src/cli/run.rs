//! `wgvision run`: safetensors in -> safetensors out, or an image -> top classes.
use super::{open_gpu, CliResult};
use std::collections::HashMap;
use std::path::PathBuf;
use wgvision::weights::st::{self, OutTensor};
use wgvision::{image_input, softmax, top_k, Model};

#[allow(clippy::too_many_arguments)]
pub fn run(
    model: PathBuf,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    image: Option<PathBuf>,
    top: usize,
    routing_stats: Option<PathBuf>,
    backend: Option<String>,
) -> CliResult {
    if input.is_none() && image.is_none() {
        return Err("give --input IN.safetensors -o OUT.safetensors, or --image FILE".into());
    }
    if input.is_some() && output.is_none() {
        return Err("--input needs -o OUT.safetensors".into());
    }
    // Read and check the model file and the input before opening the device.
    let file = wgvision::ModelFile::open(&model)?;
    let (name, _) = file.config.image_input(1);
    let image_pixels = match &image {
        Some(img) => Some(image_input::load_image(img, file.config.preprocess())?),
        None => None,
    };
    let detector = matches!(file.config, wgvision::graphs::ModelConfig::Owl(_));
    let pixels = match &input {
        Some(input) => {
            let (_, tensors) = st::load(input)?;
            let mut tensors: HashMap<String, st::Tensor> = tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
            let t = tensors.remove(&name).ok_or_else(|| format!("{}: no tensor '{name}'", input.display()))?;
            if t.dtype != safetensors::Dtype::F32 {
                return Err(format!("{}: tensor '{name}' has dtype {:?}, expected F32", input.display(), t.dtype).into());
            }
            let mut extra = Vec::new();
            if detector {
                let ids = tensors.remove("input_ids").ok_or_else(|| format!("{}: no tensor 'input_ids' (a detector needs text queries)", input.display()))?;
                let mask = match tensors.remove("attention_mask") {
                    Some(m) if m.shape == ids.shape => m,
                    Some(m) => return Err(format!("{}: attention_mask {:?} does not match input_ids {:?}", input.display(), m.shape, ids.shape).into()),
                    // transformers without a mask: no padding positions.
                    None => st::Tensor { name: "attention_mask".into(), dtype: ids.dtype, shape: ids.shape.clone(), data: vec![1.0; ids.data.len()] },
                };
                extra = vec![ids, mask];
            }
            Some((t, extra))
        }
        None => None,
    };
    let gpu = open_gpu(backend.as_deref())?;
    let config = file.config.clone();
    let m = Model::from_weights(gpu, config, |n| file.get(n))?;
    drop(file);
    let Some((t, extra)) = pixels else {
        let (img, pixels) = (image.unwrap_or_default(), image_pixels.unwrap_or_default());
        let (_, shape) = m.config.image_input(1);
        let out = m.run(&pixels, &shape)?;
        let logits = &out[0].data;
        let probs = softmax(logits);
        out!("{}: top-{top} of {} outputs", img.display(), logits.len());
        for (rank, (i, p)) in top_k(&probs, top).into_iter().enumerate() {
            out!("{:>2}. class {i:>5}  p={p:.4}  logit={:.4}", rank + 1, logits[i]);
        }
        return Ok(());
    };
    let output = output.unwrap_or_default();
    let out = match &routing_stats {
        Some(path) => {
            let (out, stats) = m.run_with_routing(&t.data, &t.shape)?;
            let json = serde_json::json!({ "model": m.config.name(), "batch": t.shape[0], "layers": stats });
            wgvision::weights::st::write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())?;
            out
        }
        None => {
            let mut inputs: Vec<(&str, &[f32], &[usize])> = vec![(name.as_str(), &t.data, &t.shape)];
            inputs.extend(extra.iter().map(|x| (x.name.as_str(), x.data.as_slice(), x.shape.as_slice())));
            m.run_inputs(&inputs)?
        }
    };
    let tensors: Vec<OutTensor> = out.into_iter().map(|t| OutTensor { name: t.name, shape: t.shape, f16: false, data: t.data }).collect();
    st::write(&output, &tensors, HashMap::new())?;
    Ok(())
}
