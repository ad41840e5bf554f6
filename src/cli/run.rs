//! `wgvision run`: safetensors in -> safetensors out, or an image -> top classes.
use super::{open_gpu, CliResult};
use std::collections::HashMap;
use std::path::PathBuf;
use wgvision::weights::st::{self, OutTensor};
use wgvision::{image_input, softmax, top_k, Model};

/// Open-vocabulary detection options (OWL-ViT / OWLv2 with --image).
pub struct DetectArgs {
    pub queries: Vec<String>,
    /// Zero-shot classification labels (CLIP / SigLIP).
    pub labels: Vec<String>,
    pub tokenizer: Option<PathBuf>,
    pub query_image: Option<PathBuf>,
    pub threshold: f32,
    pub nms_iou: f32,
    pub json: bool,
    pub draw: Option<PathBuf>,
}

/// What an --input run also writes besides its outputs.
pub struct Probes {
    /// V-MoE routing statistics (JSON).
    pub routing_stats: Option<PathBuf>,
    /// A directory for every node's output.
    pub dump_nodes: Option<PathBuf>,
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    model: PathBuf,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    images: Vec<PathBuf>,
    batch: usize,
    top: usize,
    probes: Probes,
    detect: DetectArgs,
    backend: Option<String>,
) -> CliResult {
    let Probes { routing_stats, dump_nodes } = probes;
    if routing_stats.is_some() && dump_nodes.is_some() {
        return Err("--routing-stats and --dump-nodes are separate runs: give one".into());
    }
    if input.is_none() && images.is_empty() {
        return Err("give --input IN.safetensors -o OUT.safetensors, or --image FILE".into());
    }
    if batch == 0 || batch > 4096 {
        return Err(format!("--batch {batch}: must be 1 to 4096").into());
    }
    let images = expand_images(&images)?;
    let image = images.first().cloned();
    if input.is_some() && output.is_none() {
        return Err("--input needs -o OUT.safetensors".into());
    }
    for (flag, v) in [("--threshold", detect.threshold), ("--nms-iou", detect.nms_iou)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(format!("{flag} {v}: must be a number in [0, 1]").into());
        }
    }
    // Every output is checked before any work: never an input, never a non-regular file.
    let ins: Vec<&std::path::Path> = [Some(&model), input.as_ref(), detect.query_image.as_ref(), detect.tokenizer.as_ref()]
        .into_iter()
        .flatten()
        .chain(images.iter())
        .map(|p| p.as_path())
        .collect();
    if images.len() > 1 && output.is_some() {
        return Err("-o applies to one --image (or --input); several images print one result each".into());
    }
    for out in [output.as_ref(), routing_stats.as_ref(), detect.draw.as_ref()].into_iter().flatten() {
        st::check_output(out, &ins)?;
    }
    if let Some(dir) = &dump_nodes {
        if dir.exists() && !dir.is_dir() {
            return Err(format!("--dump-nodes {}: exists and is not a directory", dir.display()).into());
        }
        if ins.iter().any(|p| p == dir) {
            return Err(format!("--dump-nodes {}: is one of the inputs", dir.display()).into());
        }
    }
    // Read and check the model file and the input before opening the device.
    let file = wgvision::ModelFile::open(&model)?;
    if file.config.is_detector() && input.is_none() {
        let image = image.ok_or("give --image FILE with --query TEXT")?;
        if images.len() > 1 {
            return Err("detection takes one --image at a time".into());
        }
        if output.is_some() {
            return Err("-o applies to --input runs and classifiers; for detections use --json (stdout) or --draw OUT.png".into());
        }
        return run_detect(file, &image, detect, backend);
    }
    if !detect.queries.is_empty() || detect.query_image.is_some() {
        return Err("--query / --query-image apply to OWL-ViT / OWLv2 model files".into());
    }
    let zero_shot = matches!(file.config.task(), wgvision::Task::ZeroShot(_));
    if zero_shot && input.is_none() {
        if images.is_empty() {
            return Err("give --image FILE with --label TEXT".into());
        }
        if output.is_some() {
            return Err("-o applies to --input runs; zero-shot results print (--json for JSON lines)".into());
        }
        return run_zero_shot(file, &images, &detect, batch, top, backend);
    }
    if !detect.labels.is_empty() {
        return Err(if zero_shot {
            "--label goes with --image (zero-shot classification); an --input run takes input_ids".into()
        } else {
            "--label applies to CLIPModel / SiglipModel model files (zero-shot classification)".into()
        });
    }
    let (name, _) = file.config.image_input(1);
    let image_pixels = match &image {
        Some(img) => Some(image_input::load_image(img, file.config.preprocess())?),
        None => None,
    };
    let detector = file.config.is_detector();
    let pixels = match &input {
        Some(input) => {
            let (_, tensors) = st::load_inputs(input)?;
            let mut tensors: HashMap<String, st::Tensor> = tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
            let t = tensors.remove(&name).ok_or_else(|| format!("{}: no tensor '{name}'", input.display()))?;
            if t.dtype != safetensors::Dtype::F32 {
                return Err(format!("{}: tensor '{name}' has dtype {:?}, expected F32", input.display(), t.dtype).into());
            }
            let mut extra = Vec::new();
            let text = file.config.task_text();
            if let Some(q) = text {
                let ids = match tensors.remove("input_ids") {
                    Some(ids) => ids,
                    None if detector => return Err(format!("{}: no tensor 'input_ids' (a detector needs text queries)", input.display()).into()),
                    None => return Err(format!("{}: no tensor 'input_ids' (the model's text tower needs token ids)", input.display()).into()),
                };
                if q.attention_mask {
                    let mask = match tensors.remove("attention_mask") {
                        Some(m) if m.shape == ids.shape => m,
                        Some(m) => return Err(format!("{}: attention_mask {:?} does not match input_ids {:?}", input.display(), m.shape, ids.shape).into()),
                        // transformers without a mask: no padding positions.
                        None => st::Tensor { name: "attention_mask".into(), dtype: ids.dtype, shape: ids.shape.clone(), data: vec![1.0; ids.data.len()] },
                    };
                    extra = vec![ids, mask];
                } else {
                    extra = vec![ids];
                }
            }
            Some((t, extra))
        }
        None => None,
    };
    let gpu = open_gpu(backend.as_deref())?;
    let m = Model::from_file(gpu, &file)?;
    drop(file);
    let Some((t, extra)) = pixels else {
        return classify(&m, &images, image_pixels.unwrap_or_default(), batch, top, output.as_deref(), detect.json);
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
            match &dump_nodes {
                Some(dir) => {
                    let (out, nodes) = m.run_inputs_debug(&inputs)?;
                    write_nodes(dir, &m, &inputs, &nodes)?;
                    out
                }
                None => m.run_inputs(&inputs)?,
            }
        }
    };
    write_outputs(&output, &out)
}

/// Every node's output as DIR/NODE.safetensors (tensor named by the node), and
/// DIR/nodes.json: the nodes in execution order with op, kernel variant, shape and file.
fn write_nodes(dir: &std::path::Path, m: &Model, inputs: &[(&str, &[f32], &[usize])], nodes: &[wgvision::Tensor]) -> CliResult {
    std::fs::create_dir_all(dir).map_err(|e| format!("--dump-nodes {}: {e}", dir.display()))?;
    let compiled = m.compiled_for_inputs(inputs.iter().map(|(n, _, s)| (n.to_string(), s.to_vec())).collect())?;
    let info: HashMap<&str, &wgvision::engine::NodeInfo> = compiled.nodes().iter().map(|n| (n.name.as_str(), n)).collect();
    let mut index = Vec::new();
    for t in nodes {
        let file = format!("{}.safetensors", t.name.replace(['/', '\\'], "_"));
        let tensor = OutTensor { name: t.name.clone(), shape: t.shape.clone(), f16: false, data: t.data.clone() };
        st::write(&dir.join(&file), &[tensor], HashMap::new())?;
        let n = info.get(t.name.as_str());
        index.push(serde_json::json!({
            "node": t.name,
            "op": n.map(|n| n.op),
            "variant": n.map(|n| n.variant),
            "shape": t.shape,
            "file": file,
        }));
    }
    let json = serde_json::json!({ "model": m.config.name(), "nodes": index });
    st::write_atomic(&dir.join("nodes.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    Ok(())
}

/// The model's outputs as an f32 safetensors file, written atomically.
fn write_outputs(path: &std::path::Path, out: &[wgvision::Tensor]) -> CliResult {
    let tensors: Vec<OutTensor> = out.iter().map(|t| OutTensor { name: t.name.clone(), shape: t.shape.clone(), f16: false, data: t.data.clone() }).collect();
    st::write(path, &tensors, HashMap::new())?;
    Ok(())
}

fn run_detect(file: wgvision::ModelFile, image: &std::path::Path, d: DetectArgs, backend: Option<String>) -> CliResult {
    use wgvision::detect;
    use wgvision::tokenizer::ClipTokenizer;
    if d.queries.is_empty() && d.query_image.is_none() {
        return Err("a detector needs at least one --query TEXT (or --query-image FILE)".into());
    }
    let tok = match &d.tokenizer {
        _ if d.query_image.is_some() => None,
        Some(p) => Some(ClipTokenizer::load(p)?),
        None if !file.files.is_empty() => Some(ClipTokenizer::from_files(&file.files).map_err(|e| format!("stored tokenizer: {e}"))?),
        None => return Err("no tokenizer: pass --tokenizer tokenizer.json (or store one with `convert --tokenizer`)".into()),
    };
    let img = image_input::decode_rgb(image)?;
    let query_img = d.query_image.as_deref().map(image_input::decode_rgb).transpose()?;
    let gpu = open_gpu(backend.as_deref())?;
    let m = Model::from_file(gpu, &file)?;
    drop(file);
    let detector = detect::Detector::new(&m, tok.as_ref())?;
    let opts = detect::DetectOptions { threshold: d.threshold, nms_iou: d.nms_iou };
    let dets = match &query_img {
        Some(q) => detector.detect_image_query(&img, q, &opts)?,
        None => detector.detect(&img, &d.queries, &opts)?,
    };
    if let Some(path) = &d.draw {
        let drawn = detect::draw(&img, &dets);
        let tmp = path.with_file_name(format!(".{}.tmp{}", path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(), std::process::id()));
        let format = image::ImageFormat::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let saved = drawn.save_with_format(&tmp, format).and_then(|_| std::fs::rename(&tmp, path).map_err(image::ImageError::IoError));
        if let Err(e) = saved {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("{}: {e}", path.display()).into());
        }
    }
    if d.json {
        let v = serde_json::json!({ "image": image.display().to_string(), "queries": d.queries, "detections": dets });
        out!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        out!("{}: {} detections above {}", image.display(), dets.len(), d.threshold);
        for x in &dets {
            out!("  {:<24} {:.3}  [{:.1}, {:.1}, {:.1}, {:.1}]", x.label, x.score, x.bbox[0], x.bbox[1], x.bbox[2], x.bbox[3]);
        }
    }
    Ok(())
}

/// Zero-shot classification: the labels ranked per image, in batches.
fn run_zero_shot(file: wgvision::ModelFile, images: &[PathBuf], d: &DetectArgs, batch: usize, top: usize, backend: Option<String>) -> CliResult {
    if d.labels.is_empty() {
        return Err("a zero-shot model needs at least one --label TEXT".into());
    }
    if let Some(bad) = d.labels.iter().find(|l| l.trim().is_empty()) {
        return Err(format!("--label {bad:?}: empty").into());
    }
    let tok = match &d.tokenizer {
        Some(p) => wgvision::zero_shot::load_tokenizer(p, &file.config)?,
        None if !file.files.is_empty() => wgvision::zero_shot::stored_tokenizer(&file.files).map_err(|e| format!("stored tokenizer: {e}"))?,
        None => return Err("no tokenizer: pass --tokenizer (tokenizer.json, or the folder with it) or store one with `convert --tokenizer`".into()),
    };
    let first = image_input::load_image(&images[0], file.config.preprocess())?;
    let gpu = open_gpu(backend.as_deref())?;
    let m = Model::from_file(gpu, &file)?;
    drop(file);
    let zs = wgvision::zero_shot::ZeroShot::new(&m, tok.as_ref())?;
    in_batches(&m, images, first, batch, |chunk, pixels, bar| {
        let results = zs.classify(pixels, chunk.len(), &d.labels)?;
        bar.clear();
        for (img, ranked) in chunk.iter().zip(results) {
            let ranked: Vec<_> = ranked.into_iter().take(top).collect();
            if d.json {
                let v = serde_json::json!({ "image": img.display().to_string(), "model": m.config.name(), "labels": ranked });
                out!("{}", serde_json::to_string(&v)?);
            } else {
                out!("{}: {} labels", img.display(), d.labels.len());
                for (rank, r) in ranked.iter().enumerate() {
                    out!("{:>2}. {:<32} p={:.4}  logit={:.4}", rank + 1, r.label, r.score, r.logit);
                }
            }
        }
        Ok(())
    })
}

/// Run `each` on the images in batches of `batch`: (paths, their preprocessed pixels, the
/// progress bar to clear before printing). `first` holds the first image's pixels, already
/// loaded and checked; a progress bar goes to stderr when it is a terminal and the run
/// takes over a second.
fn in_batches(m: &Model, images: &[PathBuf], first: Vec<f32>, batch: usize, mut each: impl FnMut(&[PathBuf], &[f32], &super::progress::Bar) -> CliResult) -> CliResult {
    let (_, one) = m.config.image_input(1);
    let bar = super::progress::Bar::new();
    let mut first = Some(first);
    for (b, chunk) in images.chunks(batch).enumerate() {
        let mut pixels = Vec::with_capacity(chunk.len() * one[1..].iter().product::<usize>());
        for img in chunk {
            match first.take() {
                Some(p) => pixels.extend(p),
                None => pixels.extend(image_input::load_image(img, m.config.preprocess())?),
            }
        }
        each(chunk, &pixels, &bar)?;
        if images.len() > 1 {
            bar.update("images", (b * batch + chunk.len()).min(images.len()) as u64, images.len() as u64);
        }
    }
    bar.finish();
    Ok(())
}

/// `--image` arguments with directories expanded to their PNG / JPEG files (sorted).
fn expand_images(args: &[PathBuf]) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(a)
                .map_err(|e| format!("{}: {e}", a.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().and_then(|x| x.to_str()).is_some_and(|x| ["png", "jpg", "jpeg"].contains(&x.to_ascii_lowercase().as_str())))
                .collect();
            if found.is_empty() {
                return Err(format!("{}: no .png / .jpg / .jpeg files", a.display()).into());
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// Classify images in batches of `batch`: the top classes of each, as text or one JSON
/// line per image; `first` holds the first image's pixels (see `in_batches`).
fn classify(m: &Model, images: &[PathBuf], first: Vec<f32>, batch: usize, top: usize, output: Option<&std::path::Path>, json: bool) -> CliResult {
    let (_, one) = m.config.image_input(1);
    let names = m.class_names();
    let name = |i: usize| names.and_then(|n| n.get(i)).map(String::as_str);
    in_batches(m, images, first, batch, |chunk, pixels, bar| {
        let shape = [chunk.len(), one[1], one[2], one[3]];
        let out = m.run(pixels, &shape)?;
        if out[0].name != "logits" {
            let names: Vec<&str> = out.iter().map(|t| t.name.as_str()).collect();
            return Err(format!("{} has no logits to rank (outputs: {}); run it with --input IN -o OUT", m.config.name(), names.join(", ")).into());
        }
        if let Some(path) = output {
            write_outputs(path, &out)?;
        }
        let classes = out[0].data.len() / chunk.len();
        bar.clear();
        for (img, logits) in chunk.iter().zip(out[0].data.chunks(classes)) {
            let probs = softmax(logits);
            let ranked = top_k(&probs, top);
            if json {
                let top: Vec<serde_json::Value> = ranked
                    .iter()
                    .map(|&(i, p)| serde_json::json!({ "index": i, "label": name(i), "prob": p, "logit": logits[i] }))
                    .collect();
                let v = serde_json::json!({ "image": img.display().to_string(), "model": m.config.name(), "classes": classes, "top": top });
                out!("{}", serde_json::to_string(&v)?);
            } else {
                out!("{}: top-{top} of {classes} outputs", img.display());
                for (rank, &(i, p)) in ranked.iter().enumerate() {
                    let label = name(i).map(|n| format!("  {n}")).unwrap_or_default();
                    out!("{:>2}. class {i:>5}  p={p:.4}  logit={:.4}{label}", rank + 1, logits[i]);
                }
            }
        }
        Ok(())
    })
}
