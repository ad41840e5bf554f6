"""Golden fixtures for transformers' ViTForImageClassification and DeiTForImageClassification.

Small configurations built by transformers with random weights (perturbed so no bias or
norm sits at 0/1), saved under transformers' own tensor names with their config.json,
and run in float64 on the same float32 inputs the test feeds wgvision. One case runs at
224 px with 16 px patches (197 tokens, the released geometry's token count) at a small
width. Output: tests/fixtures/hf_vit/.
Run: python weights-tools/python/gen_hf_vit_fixtures.py  (pinned versions: requirements.txt)
"""
import json
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import DeiTConfig, DeiTForImageClassification, ViTConfig, ViTForImageClassification, ViTModel

from gen_vit_fixtures import perturb

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "hf_vit")

CASES = [
    # name, config kwargs, batch (DeiT: name starts with "deit")
    ("classifier_two_layers", dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96,
                                   image_size=32, patch_size=8, num_labels=5), 2),
    ("no_qkv_bias_gelu_new_eps", dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=80,
                                      image_size=48, patch_size=16, num_labels=3, qkv_bias=False,
                                      hidden_act="gelu_new", layer_norm_eps=1e-6), 1),
    ("released_tokens_224_patch16", dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64, image_size=224, patch_size=16, num_labels=10), 1),
    ("deit_distillation_token", dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96,
                                     image_size=32, patch_size=8, num_labels=4), 2),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    index = []
    for i, (name, kw, batch) in enumerate(CASES):
        gen = torch.Generator().manual_seed(5000 + i)
        deit = name.startswith("deit")
        config = (DeiTConfig if deit else ViTConfig)(**kw)
        config.architectures = ["DeiTForImageClassification" if deit else "ViTForImageClassification"]
        model = (DeiTForImageClassification if deit else ViTForImageClassification)(config).eval()
        perturb(model, gen)
        state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
        with open(os.path.join(OUT, f"{name}.config.json"), "w") as f:
            f.write(config.to_json_string())
        size = kw["image_size"]
        x = torch.randn(batch, 3, size, size, generator=gen).float()
        with torch.no_grad():
            ref = model.double()(pixel_values=x.double()).logits
        save_file(state, os.path.join(OUT, f"{name}.checkpoint.safetensors"))
        save_file({"pixel_values": x, "logits": ref.contiguous()}, os.path.join(OUT, f"{name}.io.safetensors"))
        index.append({"from": "hf", "config": f"{name}.config.json", "batch": batch, "name": name, "out_shape": list(ref.shape)})
        print(f"{name}: -> {tuple(ref.shape)}")
    # ViTModel: last_hidden_state and pooler_output (not in cases.json, whose cases all
    # give logits; tests/golden_hf_vit.rs reads it on its own).
    gen = torch.Generator().manual_seed(5100)
    config = ViTConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=32,
                       patch_size=8)
    config.architectures = ["ViTModel"]
    model = ViTModel(config).eval()
    perturb(model, gen)
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    with open(os.path.join(OUT, "model_outputs.config.json"), "w") as f:
        f.write(config.to_json_string())
    x = torch.randn(2, 3, 32, 32, generator=gen).float()
    with torch.no_grad():
        out = model.double()(pixel_values=x.double())
    save_file(state, os.path.join(OUT, "model_outputs.checkpoint.safetensors"))
    save_file({"pixel_values": x, "last_hidden_state": out.last_hidden_state.contiguous(),
               "pooler_output": out.pooler_output.contiguous()}, os.path.join(OUT, "model_outputs.io.safetensors"))
    print(f"model_outputs: -> {tuple(out.last_hidden_state.shape)}, {tuple(out.pooler_output.shape)}")
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"transformers_version": transformers.__version__, "torch_version": torch.__version__, "cases": index},
                  f, indent=1)


if __name__ == "__main__":
    main()
