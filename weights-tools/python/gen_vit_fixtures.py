"""Golden fixtures for the timm ViT family.

For each small configuration: build the model with timm (random weights, perturbed so no
bias or norm sits at 0/1 and LayerScale is not ~0), save its state dict under timm's own
names, and compute the output in float64 from exactly the float32 weights and inputs
that the test feeds wgvision. Output: tests/fixtures/vit/.
Run: python weights-tools/python/gen_vit_fixtures.py  (pinned versions: requirements.txt)
"""
import json
import os

import timm
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "vit")

SMALL = dict(depth=2, num_classes=10)
CASES = [
    # name, timm model, overrides, batch
    ("base_token", "vit_base_patch16_224", dict(SMALL, img_size=32, patch_size=8, embed_dim=48, num_heads=3), 2),
    ("nonsquare_dropped_pixels", "vit_tiny_patch16_224", dict(SMALL, img_size=[40, 56], embed_dim=32, num_heads=2), 1),
    ("avg_pool_no_cls", "vit_small_patch16_224", dict(SMALL, img_size=32, patch_size=8, embed_dim=32, num_heads=4,
                                                      global_pool="avg", class_token=False), 2),
    ("clip_prenorm", "vit_base_patch16_clip_224", dict(SMALL, img_size=48, embed_dim=64, num_heads=4), 1),
    ("clip_quickgelu", "vit_base_patch32_clip_quickgelu_224", dict(SMALL, img_size=64, embed_dim=32, num_heads=2), 2),
    ("dinov2_reg_layerscale_features", "vit_small_patch14_reg4_dinov2",
     dict(depth=2, img_size=28, embed_dim=48, num_heads=3, num_classes=0), 2),
    ("dinov2_cls_layerscale", "vit_small_patch14_dinov2", dict(depth=2, img_size=42, embed_dim=32, num_heads=2, num_classes=5), 1),
    ("noqkvbias_tanh_fcnorm_ratio", "vit_base_patch16_224",
     dict(SMALL, img_size=24, patch_size=8, embed_dim=40, num_heads=5, qkv_bias=False, act_layer="gelu_tanh",
          fc_norm=True, mlp_ratio=2.5, num_classes=7), 3),
    ("deit_tiny", "deit_tiny_patch16_224", dict(SMALL, img_size=32, embed_dim=24, num_heads=3), 1),
    ("large_patch8_avg_reg", "vit_large_patch16_224",
     dict(depth=1, img_size=16, patch_size=8, embed_dim=64, num_heads=2, num_classes=3, reg_tokens=2,
          global_pool="avg", init_values=0.5), 2),
]


def perturb(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or name.endswith("gamma")):
                base = 1.0 if name.endswith("weight") or name.endswith("gamma") else 0.0
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                std = 1.0 / max(fan_in, 1) ** 0.5 if p.dim() > 1 else 0.1
                p.copy_(std * torch.randn(p.shape, generator=gen))


def main():
    os.makedirs(OUT, exist_ok=True)
    index = []
    for i, (name, model_name, kw, batch) in enumerate(CASES):
        gen = torch.Generator().manual_seed(1000 + i)
        model = timm.create_model(model_name, pretrained=False, **kw).eval()
        perturb(model, gen)
        state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(OUT, f"{name}.checkpoint.safetensors"))
        c, h, w = 3, *(kw["img_size"] if isinstance(kw["img_size"], list) else [kw["img_size"]] * 2)
        x = torch.randn(batch, c, h, w, generator=gen).float()
        with torch.no_grad():
            ref = model.double()(x.double())
        save_file({"pixel_values": x, "logits": ref.contiguous()}, os.path.join(OUT, f"{name}.io.safetensors"))
        index.append({"name": name, "model": model_name, "sets": kw, "batch": batch, "out_shape": list(ref.shape)})
        print(f"{name}: {model_name} {kw} -> {tuple(ref.shape)}")
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"timm_version": timm.__version__, "torch_version": torch.__version__, "cases": index}, f, indent=1)


if __name__ == "__main__":
    main()
