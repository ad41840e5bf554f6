//! Reading and writing safetensors files: tensors widened to f32 for conversion and run
//! inputs, and an atomic writer (temp file + rename) so no partial file is ever left.
use crate::{Result, WeightsError};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

pub struct Tensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Files larger than this are refused before reading (a model file, a run input).
pub fn host_memory_budget() -> u64 {
    // Half the machine's memory where /proc/meminfo tells it, else 16 GiB;
    // WGVISION_HOST_MEMORY_BUDGET (bytes) overrides.
    if let Some(b) = std::env::var("WGVISION_HOST_MEMORY_BUDGET").ok().and_then(|v| v.parse().ok()) {
        return b;
    }
    let total_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok())
    });
    total_kb.map_or(16 << 30, |kb| kb * 1024 / 2)
}

/// Refuse `bytes` of host memory for `what` past the budget, naming both sizes.
pub fn check_host_bytes(what: &str, bytes: Option<u64>) -> Result<u64> {
    let budget = host_memory_budget();
    match bytes {
        Some(b) if b <= budget => Ok(b),
        Some(b) => Err(WeightsError::Unsupported(format!(
            "{what} needs {:.2} GB of host memory, over the budget of {:.2} GB (half the machine's memory; WGVISION_HOST_MEMORY_BUDGET sets it)",
            b as f64 / 1e9,
            budget as f64 / 1e9
        ))),
        None => Err(WeightsError::Unsupported(format!("{what}: the size overflows 64 bits"))),
    }
}

/// Read a whole input file: a regular file (not a device or pipe such as /dev/zero) whose
/// size fits the host-memory budget.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let io = |source| WeightsError::Io { path: path.display().to_string(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(WeightsError::Unsupported(format!("{}: not a regular file", path.display())));
    }
    check_host_bytes(&path.display().to_string(), Some(meta.len()))?;
    // Read in 64 MiB steps so a large checkpoint reports its progress.
    use std::io::Read;
    let total = meta.len();
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::with_capacity(total as usize);
    // Each step reads straight into `bytes` (no staging buffer, no second copy).
    while (&mut f).take(64 << 20).read_to_end(&mut bytes).map_err(io)? > 0 {
        crate::progress::report("reading", bytes.len() as u64, total.max(bytes.len() as u64));
    }
    Ok(bytes)
}

/// A JSON file (a peer's config.json, an index or processor config), read within the same
/// bounds as `read_file`.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes = read_file(path)?;
    let bad = |message: String| crate::WeightsError::BadFile { path: path.display().to_string(), message };
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))
}

/// Check an output path before any work: its directory exists, it is not one of the
/// `inputs` (same file, whatever the spelling or link), and where it exists it is a
/// regular file (never replace a symlink, a device or a directory).
pub fn check_output(path: &Path, inputs: &[&Path]) -> Result<()> {
    let bad = |m: String| Err(WeightsError::Unsupported(format!("output {}: {m}", path.display())));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return bad(format!("directory {} does not exist", dir.display()));
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_symlink() {
            return bad("is a symbolic link; refusing to replace it".into());
        }
        if !meta.is_file() {
            return bad("exists and is not a regular file; refusing to replace it".into());
        }
        let out = std::fs::canonicalize(path).ok();
        for i in inputs {
            if out.is_some() && std::fs::canonicalize(i).ok() == out {
                return bad(format!("is the input {}; choose another output file", i.display()));
            }
        }
    }
    Ok(())
}

/// Parse safetensors bytes into f32 tensors (f32, f16, bf16, f64, and integer ids); any
/// other dtype is an error.
pub fn parse(bytes: &[u8], path: &str) -> Result<(HashMap<String, String>, Vec<Tensor>)> {
    parse_with(bytes, path, false)
}

/// Like `parse`, but tensors of other dtypes (a U8 image, a BOOL mask a caller does not
/// use) are skipped rather than refused: a run input may carry extra tensors.
pub fn parse_lenient(bytes: &[u8], path: &str) -> Result<(HashMap<String, String>, Vec<Tensor>)> {
    parse_with(bytes, path, true)
}

fn parse_with(bytes: &[u8], path: &str, skip_unreadable: bool) -> Result<(HashMap<String, String>, Vec<Tensor>)> {
    let bad = |message: String| WeightsError::NotSafetensors { path: path.to_string(), message };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(explain(&e)))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(explain(&e)))?;
    let mut out = Vec::new();
    let mut names = st.names();
    names.sort();
    for name in names {
        let v = st.tensor(name).map_err(|e| bad(e.to_string()))?;
        let d = v.data();
        let data: Vec<f32> = match v.dtype() {
            Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => d.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => d.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            Dtype::I32 => d.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            _ if skip_unreadable => continue,
            other => return Err(WeightsError::UnsupportedDtype { tensor: name.to_string(), dtype: format!("{other:?}") }),
        };
        out.push(Tensor { name: name.to_string(), dtype: v.dtype(), shape: v.shape().to_vec(), data });
    }
    Ok((meta.metadata().clone().unwrap_or_default(), out))
}

/// What a safetensors error means, in words (its Debug names are not messages).
pub fn explain(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall => "the file is shorter than the 8-byte header length".into(),
        E::HeaderTooLarge => "the header length in the first 8 bytes is larger than safetensors allows (100 MB)".into(),
        E::InvalidHeaderLength => "the header length in the first 8 bytes runs past the end of the file".into(),
        E::InvalidHeader => "the header is not UTF-8".into(),
        E::InvalidHeaderStart => "the header does not start with '{'".into(),
        E::InvalidHeaderDeserialization => "the JSON header is malformed".into(),
        E::MetadataIncompleteBuffer => "the file is truncated: the header describes more tensor data than the file holds".into(),
        E::InvalidOffset(t) => format!("tensor '{t}' has data offsets that overlap or leave gaps"),
        E::TensorInvalidInfo => "a tensor's shape does not match its byte length".into(),
        E::ValidationOverflow => "a tensor's shape overflows".into(),
        E::TensorNotFound(t) => format!("no tensor '{t}'"),
        other => other.to_string(),
    }
}

pub fn load(path: &Path) -> Result<(HashMap<String, String>, Vec<Tensor>)> {
    let bytes = read_file(path)?;
    parse(&bytes, &path.display().to_string())
}

/// A run input: like `load`, skipping tensors of dtypes no model input has.
pub fn load_inputs(path: &Path) -> Result<(HashMap<String, String>, Vec<Tensor>)> {
    let bytes = read_file(path)?;
    parse_lenient(&bytes, &path.display().to_string())
}

/// A tensor to write: f32 data stored as f32 or f16.
pub struct OutTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub f16: bool,
    pub data: Vec<f32>,
}

/// Serialize and write atomically: a temp file beside the target, renamed into place.
pub fn write(path: &Path, tensors: &[OutTensor], metadata: HashMap<String, String>) -> Result<()> {
    let total: u64 = tensors.iter().map(|t| t.data.len() as u64).sum();
    let mut done = 0u64;
    let blobs: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| {
            done += t.data.len() as u64;
            crate::progress::report("writing", done, total);
            if t.f16 {
                t.data.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()
            } else {
                bytemuck::cast_slice(&t.data).to_vec()
            }
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&blobs)
        .map(|(t, b)| {
            let dtype = if t.f16 { Dtype::F16 } else { Dtype::F32 };
            safetensors::tensor::TensorView::new(dtype, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| WeightsError::Unsupported(format!("tensor {}: {e}", t.name)))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::tensor::serialize(views, &Some(metadata))
        .map_err(|e| WeightsError::Unsupported(format!("serializing {}: {e}", path.display())))?;
    write_atomic(path, &bytes)
}

/// Write bytes to `path` through a temp file beside it and a rename, so a failure never
/// leaves a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| WeightsError::Io { path: path.display().to_string(), source };
    check_output(path, &[])?;
    let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
    if let Err(e) = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}
