//! Class names of classifiers: stored in the model file at conversion (transformers'
//! `id2label`), or, for a 1000-class model without names of its own, the ImageNet-1k
//! names as timm's ImageNetInfo lists them (weights-tools/data/imagenet1k_labels.txt,
//! from weights-tools/python/dump_imagenet_labels.py).

/// The model-file entry (`ModelFile::files`) holding class names, one per line.
pub const LABELS_FILE: &str = "labels.txt";

static IMAGENET_1K: &str = include_str!("../data/imagenet1k_labels.txt");

/// The ImageNet-1k class names in class-index order.
pub fn imagenet_1k() -> Vec<&'static str> {
    IMAGENET_1K.lines().collect()
}

/// Class names from a transformers config's `id2label` (index -> name), or None when it
/// has none or only transformers' placeholders (`LABEL_0`, `LABEL_1`, ..).
pub fn from_id2label(config: &serde_json::Value) -> Result<Option<Vec<String>>, String> {
    let Some(map) = config.get("id2label").and_then(|v| v.as_object()) else {
        return Ok(None);
    };
    let mut names = vec![None; map.len()];
    for (k, v) in map {
        let i: usize = k.parse().map_err(|_| format!("id2label key {k:?} is not a class index"))?;
        let name = v.as_str().ok_or_else(|| format!("id2label[{k}] is not a string"))?;
        if name.contains('\n') {
            return Err(format!("id2label[{k}] spans lines"));
        }
        let slot = names.get_mut(i).ok_or_else(|| format!("id2label has {} entries but index {i}", map.len()))?;
        *slot = Some(name.to_string());
    }
    let names: Vec<String> = names.into_iter().map(|n| n.expect("indices 0..len are distinct")).collect();
    let placeholders = names.iter().enumerate().all(|(i, n)| *n == format!("LABEL_{i}"));
    Ok((!placeholders).then_some(names))
}

/// The names for `classes` outputs: the stored ones if their count matches, else the
/// ImageNet-1k names for 1000 outputs, else none.
pub fn class_names(stored: Option<&str>, classes: usize) -> Option<Vec<String>> {
    if let Some(text) = stored {
        let names: Vec<String> = text.lines().map(str::to_string).collect();
        if names.len() == classes {
            return Some(names);
        }
    }
    (classes == 1000).then(|| imagenet_1k().into_iter().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_names_and_id2label() {
        let names = imagenet_1k();
        assert_eq!(names.len(), 1000);
        assert_eq!(names[0], "tench, Tinca tinca");
        assert_eq!(names[999], "toilet tissue, toilet paper, bathroom tissue");
        let cfg = serde_json::json!({"id2label": {"1": "dog", "0": "cat"}});
        assert_eq!(from_id2label(&cfg).unwrap(), Some(vec!["cat".to_string(), "dog".to_string()]));
        let placeholder = serde_json::json!({"id2label": {"0": "LABEL_0", "1": "LABEL_1"}});
        assert_eq!(from_id2label(&placeholder).unwrap(), None);
        assert!(from_id2label(&serde_json::json!({"id2label": {"0": "a", "5": "b"}})).is_err());
        assert_eq!(class_names(Some("cat\ndog\n"), 2), Some(vec!["cat".to_string(), "dog".to_string()]));
        assert_eq!(class_names(Some("cat\ndog\n"), 3), None);
        assert_eq!(class_names(None, 1000).unwrap()[1], "goldfish, Carassius auratus");
    }
}
