"""Golden fixtures for transformers' ViT, DeiT and DINOv2 image models: ViTForImageClassification,
ViTModel, DeiTForImageClassification(WithTeacher), DeiTModel, Dinov2(WithRegisters)Model and
Dinov2(WithRegisters)ForImageClassification.

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
from transformers import (DeiTConfig, DeiTForImageClassification, DeiTForImageClassificationWithTeacher, DeiTModel,
                          Dinov2Config, Dinov2ForImageClassification, Dinov2Model, Dinov2WithRegistersConfig,
                          Dinov2WithRegistersForImageClassification, Dinov2WithRegistersModel, ViTConfig,
                          ViTForImageClassification, ViTModel)

from gen_vit_fixtures import perturb

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "hf_vit")

CLASSES = {"vit": (ViTConfig, ViTForImageClassification), "deit": (DeiTConfig, DeiTForImageClassification),
           "deit_teacher": (DeiTConfig, DeiTForImageClassificationWithTeacher),
           "dinov2": (Dinov2Config, Dinov2ForImageClassification),
           "dinov2_registers": (Dinov2WithRegistersConfig, Dinov2WithRegistersForImageClassification)}

# DINOv2 runs at the image processor's crop (224) while its position embedding was trained
# at image_size (518 released: a 37x37 grid), so transformers resamples it (bicubic; with
# antialiasing for the registers model). "run" is the input size; "sets" the CLI's.
DINO = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2, patch_size=14, num_labels=6,
            layerscale_value=0.5)

CASES = [
    # name, config kwargs, batch (the class: the name's prefix before "_", or CLASS_OF)
    ("classifier_two_layers", dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96,
                                   image_size=32, patch_size=8, num_labels=5), 2),
    ("no_qkv_bias_gelu_new_eps", dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=80,
                                      image_size=48, patch_size=16, num_labels=3, qkv_bias=False,
                                      hidden_act="gelu_new", layer_norm_eps=1e-6), 1),
    ("released_tokens_224_patch16", dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64, image_size=224, patch_size=16, num_labels=10), 1),
    ("deit_distillation_token", dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96,
                                     image_size=32, patch_size=8, num_labels=4), 2),
    ("deit_teacher_heads_averaged", dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                         intermediate_size=96, image_size=32, patch_size=8, num_labels=4), 2),
    ("dinov2_native_grid", dict(DINO, image_size=56), 2),
    ("dinov2_518_run_224", dict(DINO, image_size=518), 1),
    ("dinov2_registers_518_run_224", dict(DINO, image_size=518, num_register_tokens=4), 1),
    ("dinov2_56_run_112_upsampled", dict(DINO, image_size=56), 1),
    ("dinov2_registers_56_run_112_upsampled", dict(DINO, image_size=56, num_register_tokens=4), 1),
]
CLASS_OF = {"deit_distillation_token": "deit", "deit_teacher_heads_averaged": "deit_teacher",
            "dinov2_native_grid": "dinov2", "dinov2_518_run_224": "dinov2", "dinov2_registers_518_run_224": "dinov2_registers",
            "dinov2_56_run_112_upsampled": "dinov2", "dinov2_registers_56_run_112_upsampled": "dinov2_registers"}
RUN = {"dinov2_native_grid": 56, "dinov2_518_run_224": 224, "dinov2_registers_518_run_224": 224,
       "dinov2_56_run_112_upsampled": 112, "dinov2_registers_56_run_112_upsampled": 112}


def perturb_tokens(model, gen):
    """Position embeddings and prefix tokens at unit scale (perturb's fan-in scale would make
    them vanish, and the resampling with them), LayerScale gammas away from 0 and 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(k in name for k in ("position_embeddings", "cls_token", "register_tokens", "distillation_token")):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith("lambda1"):
                p.copy_(0.5 + 0.2 * torch.randn(p.shape, generator=gen))


def main():
    os.makedirs(OUT, exist_ok=True)
    index = []
    for i, (name, kw, batch) in enumerate(CASES):
        gen = torch.Generator().manual_seed(5000 + i)
        config_cls, model_cls = CLASSES[CLASS_OF.get(name, "vit")]
        config = config_cls(**kw)
        config.architectures = [model_cls.__name__]
        model = model_cls(config).eval()
        perturb(model, gen)
        perturb_tokens(model, gen)
        state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
        with open(os.path.join(OUT, f"{name}.config.json"), "w") as f:
            f.write(config.to_json_string())
        size = RUN.get(name, kw["image_size"])
        x = torch.randn(batch, 3, size, size, generator=gen).float()
        with torch.no_grad():
            ref = model.double()(pixel_values=x.double()).logits
        save_file(state, os.path.join(OUT, f"{name}.checkpoint.safetensors"))
        save_file({"pixel_values": x, "logits": ref.contiguous()}, os.path.join(OUT, f"{name}.io.safetensors"))
        case = {"from": "hf", "config": f"{name}.config.json", "batch": batch, "name": name, "out_shape": list(ref.shape)}
        if name in RUN and name.startswith("dinov2"):
            case["sets"] = {"image_size": size}
        index.append(case)
        print(f"{name}: -> {tuple(ref.shape)}")
    # The base models: last_hidden_state and pooler_output (not in cases.json, whose cases
    # all give logits; tests/golden_hf_vit.rs reads them on its own).
    for i, (name, config, model_cls, size) in enumerate([
        ("model_outputs", ViTConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96,
                                    image_size=32, patch_size=8), ViTModel, 32),
        ("deit_model_outputs", DeiTConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                          intermediate_size=96, image_size=32, patch_size=8), DeiTModel, 32),
        ("dinov2_model_outputs", Dinov2Config(**dict(DINO, image_size=518)), Dinov2Model, 224),
        ("dinov2_registers_model_outputs", Dinov2WithRegistersConfig(**dict(DINO, image_size=518, num_register_tokens=4)),
         Dinov2WithRegistersModel, 224),
    ]):
        gen = torch.Generator().manual_seed(5100 + i)
        config.architectures = [model_cls.__name__]
        model = model_cls(config).eval()
        perturb(model, gen)
        perturb_tokens(model, gen)
        state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
        with open(os.path.join(OUT, f"{name}.config.json"), "w") as f:
            f.write(config.to_json_string())
        x = torch.randn(2 if size <= 32 else 1, 3, size, size, generator=gen).float()
        with torch.no_grad():
            out = model.double()(pixel_values=x.double())
        save_file(state, os.path.join(OUT, f"{name}.checkpoint.safetensors"))
        save_file({"pixel_values": x, "last_hidden_state": out.last_hidden_state.contiguous(),
                   "pooler_output": out.pooler_output.clone().contiguous()}, os.path.join(OUT, f"{name}.io.safetensors"))
        print(f"{name}: -> {tuple(out.last_hidden_state.shape)}, {tuple(out.pooler_output.shape)}")
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"transformers_version": transformers.__version__, "torch_version": torch.__version__, "cases": index},
                  f, indent=1)


if __name__ == "__main__":
    main()
