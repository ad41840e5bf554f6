"""Record the constructor kwargs timm passes for every VisionTransformer model name, and
the pretrained preprocessing config, into weights-tools/data/timm_vit_presets.json.

The converter starts from these kwargs and applies `--set` overrides on top, so the
hyperparameters are exactly what `timm.create_model(NAME, **overrides)` would build.
Run: python weights-tools/python/dump_timm_presets.py
"""
import json
import os

import timm
import timm.models.vision_transformer as vt
import timm.models.deit as deit
from torch import nn

captured = {}


class Captured(Exception):
    pass


class CaptureVisionTransformer:
    """Stands in for the model class: timm's builder has already merged the model
    function's args with the pretrained cfg defaults (img_size, num_classes) when it
    calls the constructor, which is the point we record."""

    def __init__(self, **kwargs):
        captured["cls"] = "VisionTransformer"
        captured["kwargs"] = kwargs
        raise Captured()


class CaptureOther:
    def __init__(self, **kwargs):
        captured["cls"] = "VisionTransformerDistilled"
        raise Captured()


vt.VisionTransformer = CaptureVisionTransformer
deit.VisionTransformer = CaptureVisionTransformer
deit.VisionTransformerDistilled = CaptureOther

BUILDER_KEYS = {"cache_dir"}


def encode(key, value):
    """JSON form of a kwarg, or None when wgvision cannot represent it."""
    if key == "norm_layer":
        if value is nn.LayerNorm or value == "layernorm":
            return "layernorm_eps1e-5"
        return None
    if key == "act_layer":
        if isinstance(value, str):
            return value
        name = getattr(value, "__name__", "")
        return {"GELU": "gelu", "QuickGELU": "quick_gelu", "GELUTanh": "gelu_tanh"}.get(name)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, (int, float)) for v in value):
        return list(value)
    return None


names = sorted(set(timm.list_models("vit_*") + timm.list_models("deit_*")))
presets = {}
skipped = {}
for name in names:
    captured.clear()
    try:
        timm.create_model(name, pretrained=False)
    except Captured:
        pass
    except Exception as e:  # noqa: BLE001 - record why a name is not a plain ViT
        skipped[name] = f"{type(e).__name__}: {e}"[:120]
        continue
    if captured.get("cls") != "VisionTransformer":
        skipped[name] = f"model class {captured.get('cls')}"
        continue
    kwargs = {}
    bad = []
    for k, v in captured["kwargs"].items():
        if k in BUILDER_KEYS:
            continue
        e = encode(k, v)
        if e is None and v is not None:
            bad.append(k)
        else:
            kwargs[k] = e
    if bad:
        skipped[name] = "unsupported constructor options: " + ", ".join(sorted(bad))
        continue
    cfg = timm.models.get_pretrained_cfg(name)
    pre = {}
    if cfg is not None:
        c = cfg.to_dict()
        pre = {k: (list(c[k]) if isinstance(c.get(k), tuple) else c.get(k))
               for k in ("input_size", "mean", "std", "crop_pct", "crop_mode", "interpolation")}
    presets[name] = {"kwargs": kwargs, "pretrained_cfg": pre}

out = os.path.join(os.path.dirname(__file__), "..", "data", "timm_vit_presets.json")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump({"timm_version": timm.__version__, "presets": presets, "unsupported": skipped}, f, indent=0, sort_keys=True)
print(f"{len(presets)} presets, {len(skipped)} unsupported -> {out}")
