//! A peer checkpoint's tensors, each consumed at most once by a converter: a missing,
//! mis-shaped or left-over tensor is an error that names it.
use crate::st::Tensor;
use crate::{Result, WeightsError};
use std::collections::HashMap;

/// Canonical name -> (shape, f32 data), ready for `format::write_model`.
pub type Converted = HashMap<String, (Vec<usize>, Vec<f32>)>;

pub struct Source {
    tensors: HashMap<String, Tensor>,
    /// Extra advice for a shape mismatch on a given tensor (e.g. which --set fixes it).
    shape_hint: fn(&str, &[usize]) -> String,
}

impl Source {
    pub fn new(tensors: Vec<Tensor>, shape_hint: fn(&str, &[usize]) -> String) -> Source {
        Source { tensors: tensors.into_iter().map(|t| (t.name.clone(), t)).collect(), shape_hint }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.tensors.remove(name).ok_or_else(|| WeightsError::MissingTensor {
            tensor: name.to_string(),
            hint: format!(" (expected shape {shape:?}); check the model options against the checkpoint"),
        })?;
        if t.shape != shape {
            let hint = (self.shape_hint)(name, &t.shape);
            return Err(WeightsError::ShapeMismatch { tensor: name.to_string(), expected: shape.to_vec(), got: t.shape, hint });
        }
        Ok(t.data)
    }

    pub fn take_opt(&mut self, name: &str, shape: &[usize], present: bool) -> Result<Option<Vec<f32>>> {
        if present {
            self.take(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Drop tensors that are derived buffers, not parameters (e.g. index tables).
    pub fn discard(&mut self, pred: impl Fn(&str) -> bool) {
        self.tensors.retain(|k, _| !pred(k));
    }

    /// Every tensor must have been consumed.
    pub fn finish(self, hint: impl Fn(&str) -> String) -> Result<()> {
        if let Some(name) = self.tensors.keys().min().cloned() {
            let shape = self.tensors[&name].shape.clone();
            return Err(WeightsError::UnexpectedTensor { hint: hint(&name), tensor: name, shape });
        }
        Ok(())
    }
}

/// torch Linear weight [out, in] -> engine layout [in, out], scaled per output column.
pub fn linear_t(w: &[f32], out: usize, inp: usize, col_scale: Option<&[f32]>) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for o in 0..out {
        let s = col_scale.map_or(1.0, |g| g[o]);
        for i in 0..inp {
            t[i * out + o] = w[o * inp + i] * s;
        }
    }
    t
}
