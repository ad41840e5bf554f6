//! vmoe's own checkpoint format through the real CLI: `convert --from vmoe --config
//! CONFIG CKPT.index` on a golden fixture's parameters written as vmoe's save_checkpoint
//! writes them (tests/fixtures/vmoe_ckpt, weights-tools/python/gen_vmoe_ckpt_fixtures.py:
//! two shards, expert arrays in chunks across both), run against the fixture's float64
//! reference; broken checkpoints; and `--model NAME` for the released checkpoints.
mod common;
use common::*;
use std::path::{Path, PathBuf};

const CASE: &str = "k2_bpr_token_prelogits_drops";

fn ckpt_dir() -> PathBuf {
    fixtures().join("vmoe_ckpt")
}

fn config() -> PathBuf {
    fixtures().join(format!("vmoe/{CASE}.config.json"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// (name, shape, raw bytes) of every tensor of a model file, sorted.
fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st.tensors().into_iter().map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec())).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn vmoe_index_converts_and_matches_reference() {
    let dir = temp_dir("vmoe_ckpt_golden");
    let (model, out, io) = (dir.join("model.safetensors"), dir.join("out.safetensors"), fixtures().join(format!("vmoe/{CASE}.io.safetensors")));
    let index = ckpt_dir().join(format!("{CASE}.index"));
    wgvision_ok(&["convert", "--from", "vmoe", "--config", s(&config()), s(&index), "-o", s(&model)]);
    wgvision_ok(&["run", s(&model), "--input", s(&io), "-o", s(&out)]);
    let (shape, got) = read_tensor(&out, "logits");
    let (want_shape, want) = read_tensor(&io, "logits");
    assert_eq!(shape, want_shape);
    let e = rel_l2(&got, &want);
    eprintln!("{CASE} from vmoe's checkpoint format: rel-L2 {e:.2e}");
    assert!(e <= 1e-4, "relative L2 error {e:e} > 1e-4");

    // The same parameters through the safetensors path give the same model file, tensor
    // for tensor and bit for bit.
    let via_st = dir.join("via_safetensors.safetensors");
    let flat = fixtures().join(format!("vmoe/{CASE}.checkpoint.safetensors"));
    wgvision_ok(&["convert", "--from", "vmoe", "--config", s(&config()), s(&flat), "-o", s(&via_st)]);
    let (a, b) = (tensors(&model), tensors(&via_st));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(x == y, "tensor {} differs between the .index and the safetensors conversion", x.0);
    }
}

/// A copy of the fixture checkpoint in a fresh directory, to break.
fn copy_fixture(name: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    for e in std::fs::read_dir(ckpt_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_str().unwrap().starts_with(CASE) {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let index = dir.join(format!("{CASE}.index"));
    (dir, index)
}

/// `convert` of `index` must fail cleanly: non-zero exit, `needles` on stderr, no panic,
/// no output file.
fn convert_fails(dir: &Path, index: &Path, needles: &[&str]) {
    let model = dir.join("model.safetensors");
    let out = wgvision(&["convert", "--from", "vmoe", "--config", s(&config()), s(index), "-o", s(&model)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "converted a broken checkpoint");
    assert!(!err.contains("panicked"), "panicked:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks '{n}':\n{err}");
    }
    assert!(!model.exists(), "left an output file behind");
}

#[test]
fn missing_shard_is_named() {
    let (dir, index) = copy_fixture("vmoe_ckpt_missing_shard");
    std::fs::remove_file(dir.join(format!("{CASE}.data-00001-of-00002"))).unwrap();
    convert_fails(&dir, &index, &[&format!("{CASE}.data-00001-of-00002"), "missing"]);
}

#[test]
fn corrupt_index_and_shards_are_refused() {
    let (dir, index) = copy_fixture("vmoe_ckpt_corrupt");
    let full = std::fs::read(&index).unwrap();
    // Truncated index.
    std::fs::write(&index, &full[..full.len() - 100]).unwrap();
    convert_fails(&dir, &index, &[&format!("{CASE}.index"), "truncated"]);
    // An index that is not msgpack at all.
    std::fs::write(&index, b"\xc1 not a checkpoint").unwrap();
    convert_fails(&dir, &index, &["not a msgpack value"]);
    // A length field that claims more than the file holds.
    let mut absurd = vec![0xdfu8, 0x7f, 0xff, 0xff, 0xff];
    absurd.extend([0u8; 16]);
    std::fs::write(&index, &absurd).unwrap();
    convert_fails(&dir, &index, &["runs past the end"]);
    // A truncated data shard.
    std::fs::write(&index, &full).unwrap();
    let shard = dir.join(format!("{CASE}.data-00000-of-00002"));
    let data = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &data[..data.len() / 2]).unwrap();
    convert_fails(&dir, &index, &[&format!("{CASE}.data-00000-of-00002"), "truncated"]);
    // Shards swapped: chunks the index puts elsewhere.
    let other = dir.join(format!("{CASE}.data-00001-of-00002"));
    std::fs::write(&shard, std::fs::read(&other).unwrap()).unwrap();
    std::fs::write(&other, &data).unwrap();
    convert_fails(&dir, &index, &["not listed in the index for this shard"]);
}

/// `--model NAME` for each released checkpoint: the config is accepted (the graph is
/// checked before the checkpoint is read), and the fixture's small parameters are then
/// refused against it, naming the first tensor whose shape differs.
#[test]
fn released_checkpoint_presets_are_accepted() {
    let dir = temp_dir("vmoe_ckpt_presets");
    let index = ckpt_dir().join(format!("{CASE}.index"));
    for name in [
        "vmoe_s32_last2_ilsvrc2012_randaug_light1",
        "vmoe_s32_last2_ilsvrc2012_randaug_light1_ft_ilsvrc2012",
        "vmoe_s32_last2_ilsvrc2012_randaug_medium",
        "vmoe_b16_imagenet21k_randaug_strong",
        "vmoe_b16_imagenet21k_randaug_strong_ft_ilsvrc2012",
    ] {
        let model = dir.join(format!("{name}.safetensors"));
        let out = wgvision(&["convert", "--from", "vmoe", "--model", name, s(&index), "-o", s(&model)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && !err.contains("panicked"), "{name}:\n{err}");
        let p = if name.contains("s32") { 32 } else { 16 };
        let d = if name.contains("s32") { 512 } else { 768 };
        let want = format!("tensor 'embedding/kernel' has shape [8, 8, 3, 32], expected [{p}, {p}, 3, {d}]");
        assert!(err.contains(&want), "{name}: stderr lacks \"{want}\":\n{err}");
    }
    let out = wgvision(&["convert", "--from", "vmoe", "--model", "vmoe_h14", s(&index), "-o", s(&dir.join("x.safetensors"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("vmoe_s32_last2_ilsvrc2012_randaug_light1"), "unknown name:\n{err}");
}

/// `-o` naming one of the checkpoint's own data shards is refused before anything is
/// read or written; the shard is left as it was.
#[test]
fn output_over_a_data_shard_is_refused() {
    let (dir, index) = copy_fixture("vmoe_ckpt_output_over_shard");
    let shard = dir.join(format!("{CASE}.data-00000-of-00002"));
    let before = std::fs::read(&shard).unwrap();
    let out = wgvision(&["convert", "--from", "vmoe", "--config", s(&config()), s(&index), "-o", s(&shard)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("data shards"), "{err}");
    assert_eq!(std::fs::read(&shard).unwrap(), before);
}
