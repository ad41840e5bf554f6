"""Golden fixtures for Swin, from timm and from transformers.

Each small configuration is built by the peer library with random weights (perturbed so
no bias or norm sits at 0/1), saved under the peer's own tensor names, and run in
float64 on the same float32 inputs the test feeds wgvision. Output: tests/fixtures/swin/.
The cases cover shifted and unshifted blocks, maps that are not a multiple of the window
(padding, in timm's roll-then-pad and transformers' pad-then-roll order), a stage where
the window shrinks (per axis in timm, dropping the shift), windows 7, 8 and 12, head_dim
overrides, no qkv bias, pooled features (num_classes=0 / SwinModel), image padding to
whole patches (transformers), and transformers' newer q_proj/k_proj/v_proj names.
Run: python weights-tools/python/gen_swin_fixtures.py  (pinned versions: requirements.txt)
"""
import json
import os

import timm
import torch
import transformers
from safetensors.torch import save_file
from transformers import SwinConfig, SwinForImageClassification, SwinModel

from gen_vit_fixtures import perturb

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "swin")

TIMM_CASES = [
    # name, timm model, overrides, batch
    ("timm_shift_then_unshifted_stage", "swin_tiny_patch4_window7_224",
     dict(img_size=56, embed_dim=16, depths=[2, 2], num_heads=[1, 2], num_classes=10), 2),
    ("timm_padded_and_shrunk_window", "swin_small_patch4_window7_224",
     dict(img_size=[40, 72], embed_dim=16, depths=[2, 2], num_heads=[2, 2], num_classes=6), 1),
    ("timm_window12_no_qkv_bias_features", "swin_base_patch4_window12_384",
     dict(img_size=96, embed_dim=16, depths=[2, 2], num_heads=[2, 4], qkv_bias=False, num_classes=0), 1),
    ("timm_window8_head_dim_mlp_ratio", "swin_tiny_patch4_window7_224",
     dict(img_size=64, window_size=8, embed_dim=16, depths=[2, 1], num_heads=[2, 2], head_dim=12, mlp_ratio=2.0,
          num_classes=4), 2),
]

HF_CASES = [
    # name, class, config kwargs, batch, rename q/k/v to q_proj/k_proj/v_proj
    ("hf_classifier_image_and_map_padding", "SwinForImageClassification",
     dict(image_size=62, embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=7, num_labels=5), 2, False),
    ("hf_model_features", "SwinModel",
     dict(image_size=56, embed_dim=16, depths=[2, 2], num_heads=[1, 2], window_size=7, layer_norm_eps=1e-6), 1, False),
    ("hf_q_proj_names_window8", "SwinForImageClassification",
     dict(image_size=64, embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=8, num_labels=3, qkv_bias=False,
          hidden_act="gelu_new"), 1, True),
]


def save_case(name, state, x, ref, entry, index):
    save_file(state, os.path.join(OUT, f"{name}.checkpoint.safetensors"))
    save_file({"pixel_values": x, "logits": ref.contiguous()}, os.path.join(OUT, f"{name}.io.safetensors"))
    entry.update(name=name, out_shape=list(ref.shape))
    index.append(entry)
    print(f"{name}: -> {tuple(ref.shape)}")


def main():
    os.makedirs(OUT, exist_ok=True)
    index = []
    for i, (name, model_name, kw, batch) in enumerate(TIMM_CASES):
        gen = torch.Generator().manual_seed(2000 + i)
        model = timm.create_model(model_name, pretrained=False, **kw).eval()
        perturb(model, gen)
        state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
        h, w = kw["img_size"] if isinstance(kw["img_size"], list) else [kw["img_size"]] * 2
        x = torch.randn(batch, 3, h, w, generator=gen).float()
        with torch.no_grad():
            ref = model.double()(x.double())
        save_case(name, state, x, ref, {"from": "timm", "model": model_name, "sets": kw, "batch": batch}, index)
    for i, (name, cls, kw, batch, rename) in enumerate(HF_CASES):
        gen = torch.Generator().manual_seed(3000 + i)
        config = SwinConfig(**kw)
        if cls == "SwinForImageClassification":
            config.architectures = ["SwinForImageClassification"]
            model = SwinForImageClassification(config).eval()
        else:
            config.architectures = ["SwinModel"]
            model = SwinModel(config).eval()
        perturb(model, gen)
        state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()
                 if not k.endswith("relative_position_index")}
        if rename:
            state = {k.replace(".self.query.", ".self.q_proj.").replace(".self.key.", ".self.k_proj.")
                     .replace(".self.value.", ".self.v_proj."): v for k, v in state.items()}
        with open(os.path.join(OUT, f"{name}.config.json"), "w") as f:
            f.write(config.to_json_string())
        size = kw["image_size"]
        x = torch.randn(batch, 3, size, size, generator=gen).float()
        with torch.no_grad():
            out = model.double()(pixel_values=x.double())
        ref = out.logits if cls == "SwinForImageClassification" else out.pooler_output
        save_case(name, state, x, ref, {"from": "hf", "config": f"{name}.config.json", "batch": batch}, index)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"timm_version": timm.__version__, "transformers_version": transformers.__version__,
                   "torch_version": torch.__version__, "cases": index}, f, indent=1)


if __name__ == "__main__":
    main()
