//! Constructor kwargs of a peer model (a preset's recorded kwargs with `--set` overrides
//! on top), read with the peer's defaults; a value of the wrong type is an error naming
//! the option.
use crate::{Result, WeightsError};
use serde_json::{Map, Value};
use wgvision_graphs::Preprocess;

pub struct Kwargs(pub Map<String, Value>);

/// A constructor option with a bad value.
pub fn bad_option(key: &str, message: String) -> WeightsError {
    WeightsError::BadOption { key: key.to_string(), message }
}

impl Kwargs {
    fn get(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    pub fn is_set(&self, k: &str) -> bool {
        self.get(k).is_some()
    }

    /// Every key must be one the peer's constructor knows.
    pub fn check_known(&self, known: &[&str], class: &str) -> Result<()> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(bad_option(k, format!("not an option of timm's {class} (or not supported by wgvision)"))),
            None => Ok(()),
        }
    }

    pub fn usize(&self, k: &str, default: usize) -> Result<usize> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v.as_u64().map(|x| x as usize).ok_or_else(|| bad_option(k, format!("expected a non-negative integer, got {v}"))),
        }
    }

    pub fn opt_usize(&self, k: &str) -> Result<Option<usize>> {
        self.get(k).map(|_| self.usize(k, 0)).transpose()
    }

    pub fn f64(&self, k: &str, default: f64) -> Result<f64> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| bad_option(k, format!("expected a number, got {v}"))),
        }
    }

    /// A width ratio (mlp_ratio, expand_ratio): finite and in (0, 64], so widths derived
    /// from it stay real sizes (1e30 saturated to usize::MAX in the shapes).
    pub fn ratio(&self, k: &str, default: f64) -> Result<f64> {
        let r = self.f64(k, default)?;
        if !(r > 0.0 && r <= 64.0) {
            return Err(bad_option(k, format!("{r:e} is not a width ratio in (0, 64]")));
        }
        Ok(r)
    }

    pub fn bool(&self, k: &str, default: bool) -> Result<bool> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| bad_option(k, format!("expected true or false, got {v}"))),
        }
    }

    pub fn str(&self, k: &str, default: &str) -> Result<String> {
        match self.get(k) {
            None => Ok(default.to_string()),
            Some(v) => v.as_str().map(str::to_string).ok_or_else(|| bad_option(k, format!("expected a string, got {v}"))),
        }
    }

    /// An int (both sides) or [h, w].
    pub fn pair(&self, k: &str, default: usize) -> Result<[usize; 2]> {
        match self.get(k) {
            None => Ok([default, default]),
            Some(v) => pair_of(v).ok_or_else(|| bad_option(k, format!("expected an integer or [h, w], got {v}"))),
        }
    }

    /// A list of non-negative integers.
    pub fn usizes(&self, k: &str, default: &[usize]) -> Result<Vec<usize>> {
        match self.get(k) {
            None => Ok(default.to_vec()),
            Some(Value::Array(a)) if a.iter().all(|x| x.as_u64().is_some()) => Ok(a.iter().map(|x| x.as_u64().unwrap_or(0) as usize).collect()),
            Some(v) => Err(bad_option(k, format!("expected a list of integers, got {v}"))),
        }
    }

    pub fn raw(&self, k: &str) -> Option<&Value> {
        self.get(k)
    }
}

/// An int (both sides) or [h, w].
pub fn pair_of(v: &Value) -> Option<[usize; 2]> {
    match v {
        Value::Number(n) => n.as_u64().map(|x| [x as usize; 2]),
        Value::Array(a) if a.len() == 2 => Some([a[0].as_u64()? as usize, a[1].as_u64()? as usize]),
        _ => None,
    }
}

/// Preprocessing from a timm pretrained cfg (recorded in a presets file), for `img_size`.
pub fn timm_preprocess(cfg: &Value, in_chans: usize, img_size: [usize; 2]) -> Preprocess {
    let triple = |k: &str, d: [f32; 3]| -> [f32; 3] {
        cfg[k]
            .as_array()
            .filter(|a| a.len() == 3)
            .map(|a| [0, 1, 2].map(|i| a[i].as_f64().unwrap_or(d[i] as f64) as f32))
            .unwrap_or(d)
    };
    Preprocess {
        input_size: [in_chans, img_size[0], img_size[1]],
        mean: triple("mean", [0.485, 0.456, 0.406]),
        std: triple("std", [0.229, 0.224, 0.225]),
        crop_pct: cfg["crop_pct"].as_f64().unwrap_or(0.875) as f32,
        crop_mode: cfg["crop_mode"].as_str().unwrap_or("center").to_string(),
        interpolation: cfg["interpolation"].as_str().unwrap_or("bicubic").to_string(),
    }
}
