//! `wgvision convert`: peer checkpoint -> model file, every tensor checked.
use super::{CliResult, From};
use std::path::PathBuf;
use wgvision::graphs::ModelConfig;
use wgvision::weights::{self, format, st};

#[allow(clippy::too_many_arguments)]
pub fn convert(
    from: Option<From>,
    model: Option<String>,
    sets: Vec<String>,
    config: Option<PathBuf>,
    list_models: bool,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    f16: bool,
    tokenizer: Option<PathBuf>,
) -> CliResult {
    if list_models {
        for n in weights::timm_model_names() {
            out!("{n}");
        }
        return Ok(());
    }
    let input = input.ok_or("missing the input checkpoint (IN.safetensors, or a hub snapshot folder)")?;
    let _bar = super::progress::conversion_bar();
    let output = output.ok_or("missing -o OUT.safetensors")?;
    if input.is_dir() {
        if model.is_some() || config.is_some() {
            return Err("a hub snapshot folder names its own model and config: drop --model / --config".into());
        }
        return convert_folder(&input, &output, from, &parse_sets(&sets)?, f16, tokenizer);
    }
    let from = from.ok_or("--from timm|hf|vmoe is needed for a checkpoint file (a hub snapshot folder needs none)")?;
    let ins: Vec<&std::path::Path> = [Some(&input), config.as_ref(), tokenizer.as_ref()].into_iter().flatten().map(|p| p.as_path()).collect();
    st::check_output(&output, &ins)?;
    if weights::vmoe_ckpt::is_index(&input) {
        // Never write over one of the index's data shards (PREFIX.data-*).
        let stem = input.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let same_dir = |p: &std::path::Path| {
            let d = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            d.canonicalize().ok()
        };
        let named = output.file_name().is_some_and(|f| f.to_string_lossy().starts_with(&format!("{stem}.data-")));
        if named && same_dir(&output) == same_dir(&input) {
            return Err(format!("-o {}: one of the checkpoint's data shards", output.display()).into());
        }
    }
    // The config (and its errors) first; the checkpoint is read once it is known to fit.
    // Class names travel in the model file (transformers' id2label).
    let mut labels = None;
    let mut early = None;
    let model_cfg = match from {
        From::Timm => weights::timm_config(&model.ok_or("--from timm needs --model NAME")?, &parse_sets(&sets)?)?,
        From::Hf => {
            let path = config.ok_or("--from hf needs --config config.json (the transformers model config)")?;
            let run_size = weights::hf_run_size(&parse_sets(&sets)?)?;
            let mut json = st::read_json(&path)?;
            labels = weights::labels::from_id2label(&json).map_err(|e| format!("{}: {e}", path.display()))?;
            if json["architectures"].as_array().is_none_or(|a| a.is_empty()) {
                // The class comes from the checkpoint's head tensors.
                let (_, t) = st::load(&input)?;
                json = weights::hf_architecture_from_tensors(&json, &t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>());
                early = Some(t);
            }
            weights::hf_config(&json, run_size)?
        }
        From::Vmoe => {
            if !sets.is_empty() {
                return Err("--set applies to --from timm; edit config.json for --from vmoe".into());
            }
            // --model NAME: a released checkpoint's config, as vmoe's config files set it.
            let json = match (model.as_deref(), config) {
                (Some(name), None) => weights::vmoe::checkpoint_preset(name)?,
                (None, Some(path)) => st::read_json(&path)?,
                (Some(_), Some(_)) => return Err("--from vmoe takes --model NAME (a released checkpoint) or --config config.json, not both".into()),
                (None, None) => {
                    let names = weights::vmoe::checkpoint_preset_names().join(", ");
                    return Err(format!("--from vmoe needs --config config.json (the vmoe model config) or --model NAME, one of: {names}").into());
                }
            };
            ModelConfig::Vmoe(weights::vmoe::config(&json)?)
        }
    };
    let files = model_files(&model_cfg, tokenizer.as_deref(), labels.as_deref())?;
    let tensors = match early {
        Some(t) => t,
        // vmoe's own checkpoint: PREFIX.index and the data shards beside it.
        None if matches!(from, From::Vmoe) && weights::vmoe_ckpt::is_index(&input) => weights::vmoe_ckpt::load(&input)?,
        None => st::load(&input)?.1,
    };
    // The file and the summary describe the config the converter mapped the tensors for.
    let converted = match from {
        From::Hf => weights::convert_hf(model_cfg, tensors)?,
        _ => weights::convert(model_cfg, tensors)?,
    };
    write(&output, converted, f16, &files, "")
}

fn parse_sets(sets: &[String]) -> Result<Vec<(String, serde_json::Value)>, Box<dyn std::error::Error>> {
    let mut overrides = Vec::new();
    for s in sets {
        let (k, v) = s.split_once('=').ok_or_else(|| format!("--set {s}: expected KEY=JSON"))?;
        let v: serde_json::Value = serde_json::from_str(v)
            .map_err(|e| format!("--set {s}: the value is not JSON ({e}); strings need quotes, e.g. --set global_pool='\"avg\"'"))?;
        overrides.push((k.trim().to_string(), v));
    }
    Ok(overrides)
}

/// `convert DIR -o OUT`: a hub snapshot folder (see `weights::hub`); the family,
/// preprocessing, class names and (for detectors) the tokenizer come from the folder.
fn convert_folder(dir: &std::path::Path, output: &std::path::Path, from: Option<From>, sets: &[(String, serde_json::Value)], f16: bool, tokenizer: Option<PathBuf>) -> CliResult {
    st::check_output(output, &[dir])?;
    if output.starts_with(dir) {
        return Err(format!("-o {}: inside the input folder", output.display()).into());
    }
    let folder = weights::hub::read(dir, sets)?;
    match (from, folder.transformers) {
        (Some(From::Timm), true) | (Some(From::Hf), false) | (Some(From::Vmoe), _) => {
            return Err(format!("{}: a {} folder, not --from {}", dir.display(), if folder.transformers { "transformers" } else { "timm" }, format!("{:?}", from.unwrap()).to_lowercase()).into());
        }
        _ => {}
    }
    // A detector's tokenizer is in the folder unless --tokenizer names another.
    let detector = folder.config.takes_text();
    let tokenizer = if detector { Some(tokenizer.unwrap_or_else(|| dir.to_path_buf())) } else { tokenizer };
    let files = model_files(&folder.config, tokenizer.as_deref(), folder.labels.as_deref())?;
    let kind = if folder.transformers { "transformers folder " } else { "timm folder " };
    let converted = if folder.transformers { weights::convert_hf(folder.config, folder.tensors)? } else { weights::convert(folder.config, folder.tensors)? };
    write(output, converted, f16, &files, kind)
}

/// The files stored beside the tensors: a text tower's tokenizer (read and checked),
/// or a classifier's class names.
fn model_files(config: &ModelConfig, tokenizer: Option<&std::path::Path>, labels: Option<&[String]>) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    let text = config.takes_text();
    match tokenizer {
        Some(path) if text => Ok(wgvision::zero_shot::read_tokenizer_files(path, config)?),
        Some(_) => Err("--tokenizer applies to models with a text tower (OWL-ViT / OWLv2, CLIPModel, SiglipModel)".into()),
        None => Ok(labels.filter(|_| !text).map(|n| vec![(weights::labels::LABELS_FILE.to_string(), n.join("\n"))]).unwrap_or_default()),
    }
}

/// Write the model file and say what was written (`kind`: "" or "timm folder " ..).
fn write(output: &std::path::Path, converted: weights::mapper::Conversion, f16: bool, files: &[(String, String)], kind: &str) -> CliResult {
    let params = converted.parameter_count();
    format::write_model_with_files(output, &converted.config, converted.tensors, f16, files)?;
    super::progress::end_line();
    eprintln!(
        "converted {kind}{} ({:.2}M parameters, {}) -> {} ({})",
        converted.config.name(),
        params as f64 / 1e6,
        if f16 { "f16 matmul weights" } else { "f32" },
        output.display(),
        written(output)
    );
    Ok(())
}

/// "346.3 MB written" (the model file's size).
fn written(path: &std::path::Path) -> String {
    std::fs::metadata(path).map(|m| format!("{:.1} MB written", m.len() as f64 / 1e6)).unwrap_or_default()
}
