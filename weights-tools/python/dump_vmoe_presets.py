"""Record the model configs of vmoe's released checkpoints, as vmoe's own config files
build them, into weights-tools/data/vmoe_presets.json (`convert --from vmoe --model NAME`).

For each released checkpoint this imports its ml_collections config from a vmoe source
tree, calls get_config(), and keeps:
  - `model`: config.model, as vmoe builds the network for training;
  - `evaluate_model_overrides`: config.evaluate.model_overrides, which vmoe's evaluator
    merges over `model` (ConfigDict.update, recursive) to build the evaluated network
    (e.g. a higher capacity_factor); null where the config sets none;
  - `image_size` and `eval_process`: the input size and pipeline of the config's test
    (or, lacking one, validation) dataset; vmoe's model config has no image size;
  - `source`: the config file read.
vmoe_s32_last2_ilsvrc2012_randaug_medium has no config in vmoe's repository: vmoe's
README describes it as light1's architecture (V-MoE S/32, 8 experts on the last two odd
blocks) trained for 1000 epochs with medium augmentation, so it is recorded from the
light1 config with that description (the model fields do not depend on the epochs or
the augmentation), and marked `derived`.

Needs ml-collections (pip install ml-collections). Run:
  python weights-tools/python/dump_vmoe_presets.py VMOE_SRC [VMOE_COMMIT]
where VMOE_SRC is a checkout of google-research/vmoe (only vmoe/configs is imported).
"""
import importlib
import json
import os
import re
import sys

import ml_collections

PRESETS = {
    # name: (config module under vmoe.configs.vmoe_paper, description override or None)
    "vmoe_s32_last2_ilsvrc2012_randaug_light1": ("vmoe_s32_last2_ilsvrc2012_randaug_light1", None),
    "vmoe_s32_last2_ilsvrc2012_randaug_light1_ft_ilsvrc2012": ("vmoe_s32_last2_ilsvrc2012_randaug_light1_ft_ilsvrc2012", None),
    "vmoe_s32_last2_ilsvrc2012_randaug_medium": ("vmoe_s32_last2_ilsvrc2012_randaug_light1", "ViT-S/32, E=8, K=2, Last 2, 1000 Epochs"),
    # pretrain_imagenet21k.py is the config of vmoe_b16_imagenet21k_randaug_strong (its
    # docstring: the pre-training of the model fine-tuned by the *_ft_* configs).
    "vmoe_b16_imagenet21k_randaug_strong": ("pretrain_imagenet21k", None),
    "vmoe_b16_imagenet21k_randaug_strong_ft_ilsvrc2012": ("vmoe_b16_imagenet21k_randaug_strong_ft_ilsvrc2012", None),
}

SIZE_OP = re.compile(r"(resize_small|resize|central_crop|decode_jpeg_and_inception_crop)\((\d+)")


def plain(v):
    """JSON form of a config value (ConfigDicts to dicts, tuples to lists)."""
    if isinstance(v, ml_collections.ConfigDict):
        v = v.to_dict()
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [plain(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"config value {v!r} has no JSON form")


def eval_geometry(process):
    """(image_size, crop_pct, crop_mode) of an eval pipeline: `resize(S)` squashes to S x S;
    `resize_small(R)|central_crop(S)` resizes the shorter side to R and crops S x S."""
    ops = SIZE_OP.findall(process)
    if not ops:
        raise ValueError(f"no resize / crop in {process!r}")
    last, size = ops[-1][0], int(ops[-1][1])
    if last == "resize":
        return size, 1.0, "squash"
    if last == "central_crop":
        small = [int(s) for op, s in ops if op == "resize_small"]
        if not small:
            raise ValueError(f"central_crop without resize_small in {process!r}")
        return size, size / small[-1], "center"
    raise ValueError(f"unexpected eval size op {last} in {process!r}")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    src = os.path.abspath(sys.argv[1])
    commit = sys.argv[2] if len(sys.argv) > 2 else None
    sys.path.insert(0, src)
    presets = {}
    for name, (module, description) in PRESETS.items():
        mod = importlib.import_module(f"vmoe.configs.vmoe_paper.{module}")
        config = mod.get_config()
        model = config.model
        if description is not None:
            # The light1 module builds its model from a description string.
            model = mod.get_vmoe_params(description)
        ds = config.dataset
        split = "test" if "test" in ds else "val"
        process = ds[split].process
        size, crop_pct, crop_mode = eval_geometry(process)
        overrides = config.get("evaluate", {}).get("model_overrides") if "evaluate" in config else None
        entry = {
            "source": f"vmoe/configs/vmoe_paper/{module}.py",
            "model": plain(model),
            "evaluate_model_overrides": plain(overrides) if overrides else None,
            "image_size": size,
            "eval_process": f"dataset.{split}.process: {process}",
            "eval_crop_pct": crop_pct,
            "eval_crop_mode": crop_mode,
        }
        if description is not None:
            entry["derived"] = (f"no config in vmoe's repository; vmoe's README describes it as this architecture: "
                                f"the model of {module}.py built for {description!r}")
        presets[name] = entry
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "vmoe_presets.json")
    with open(out, "w") as f:
        json.dump({"vmoe_commit": commit, "presets": presets}, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(presets)} presets -> {out}")


if __name__ == "__main__":
    main()
