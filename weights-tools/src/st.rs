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

pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| WeightsError::Io { path: path.display().to_string(), source })
}

/// Parse safetensors bytes into f32 tensors (f32, f16, bf16, f64, and integer ids).
pub fn parse(bytes: &[u8], path: &str) -> Result<(HashMap<String, String>, Vec<Tensor>)> {
    let bad = |message: String| WeightsError::NotSafetensors { path: path.to_string(), message };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
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
            other => return Err(WeightsError::UnsupportedDtype { tensor: name.to_string(), dtype: format!("{other:?}") }),
        };
        out.push(Tensor { name: name.to_string(), dtype: v.dtype(), shape: v.shape().to_vec(), data });
    }
    Ok((meta.metadata().clone().unwrap_or_default(), out))
}

pub fn load(path: &Path) -> Result<(HashMap<String, String>, Vec<Tensor>)> {
    let bytes = read_file(path)?;
    parse(&bytes, &path.display().to_string())
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
    let blobs: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| {
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
    let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
    if let Err(e) = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}
