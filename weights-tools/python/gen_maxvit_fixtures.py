"""Golden fixtures for MaxViT from timm (both families, rmlp, LayerScale, both heads).

Each small configuration is built by timm with random weights, perturbed so that no
bias or norm sits at 0/1 and every BatchNorm has non-trivial running statistics, saved
under timm's own tensor names, and run in float64 on the same float32 inputs the test
feeds wgvision. Output: tests/fixtures/maxvit/.
Cases: the tf family (TF "same" padding: stride-2 depthwise and the shortcut pool pad
bottom/right; RelPosBiasTf; interleaved qkv; NormMlp head; tanh GELU), non-square maps
with a window different from the grid, the rw family (symmetric padding, SiLU convs,
head-first qkv, RelPosBias, LayerNorm + linear head, no conv output bias), and rmlp
(RelPosMlp, whose bias the converter evaluates) with LayerScale and with a NormMlp head.
Run: python weights-tools/python/gen_maxvit_fixtures.py  (pinned versions: requirements.txt)
"""
import json
import os

import timm
import torch
from safetensors.torch import save_file

from gen_vit_fixtures import perturb

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "maxvit")

SMALL = dict(transformer_dim_head=8)
CASES = [
    # name, timm model, overrides, batch
    ("tf_two_stages_normmlp_head", "maxvit_tiny_tf_224",
     dict(img_size=96, embed_dim=[16, 32], depths=[2, 1], stem_width=16, head_hidden_size=24, num_classes=7, **SMALL), 2),
    ("tf_nonsquare_window_ne_grid_features", "maxvit_small_tf_224",
     dict(img_size=[64, 96], embed_dim=[16, 32], depths=[1, 2], stem_width=8, head_hidden_size=20, num_classes=0,
          transformer_window_size=[4, 4], transformer_grid_size=[2, 3], **SMALL), 1),
    ("rw_symmetric_relposbias", "maxvit_nano_rw_256",
     dict(img_size=96, embed_dim=[16, 24], depths=[1, 2], stem_width=[8, 16], num_classes=5, **SMALL), 2),
    ("rmlp_layerscale", "maxvit_rmlp_small_rw_224",
     dict(img_size=96, embed_dim=[16, 32], depths=[2, 1], stem_width=[8, 16], num_classes=3, **SMALL), 1),
    ("rmlp_normmlp_head_features", "maxvit_rmlp_base_rw_224",
     dict(img_size=64, embed_dim=[16, 24], depths=[1, 1], stem_width=[8, 16], head_hidden_size=12, num_classes=0,
          transformer_rel_pos_dim=32, **SMALL), 2),
]


def perturb_bn_stats(model, gen):
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.2 * torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=gen))


def main():
    os.makedirs(OUT, exist_ok=True)
    index = []
    for i, (name, model_name, kw, batch) in enumerate(CASES):
        gen = torch.Generator().manual_seed(4000 + i)
        model = timm.create_model(model_name, pretrained=False, **kw).eval()
        perturb(model, gen)
        perturb_bn_stats(model, gen)
        state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(OUT, f"{name}.checkpoint.safetensors"))
        h, w = kw["img_size"] if isinstance(kw["img_size"], list) else [kw["img_size"]] * 2
        x = torch.randn(batch, 3, h, w, generator=gen).float()
        with torch.no_grad():
            ref = model.double()(x.double())
        save_file({"pixel_values": x, "logits": ref.contiguous()}, os.path.join(OUT, f"{name}.io.safetensors"))
        index.append({"name": name, "from": "timm", "model": model_name, "sets": kw, "batch": batch,
                      "out_shape": list(ref.shape)})
        print(f"{name}: -> {tuple(ref.shape)}, |logits| {ref.abs().mean():.3g}")
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"timm_version": timm.__version__, "torch_version": torch.__version__, "cases": index}, f, indent=1)


if __name__ == "__main__":
    main()
