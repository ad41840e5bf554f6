"""Record the constructor kwargs timm passes for every VisionTransformer model name, and
the pretrained preprocessing config, into weights-tools/data/timm_vit_presets.json.

The converter starts from these kwargs and applies `--set` overrides on top, so the
hyperparameters are exactly what `timm.create_model(NAME, **overrides)` would build.
Run: python weights-tools/python/dump_timm_presets.py
"""
import os

import timm
import timm.models.vision_transformer as vt
import timm.models.deit as deit
from torch import nn

from presets_common import record_presets

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
out = os.path.join(os.path.dirname(__file__), "..", "data", "timm_vit_presets.json")
os.makedirs(os.path.dirname(out), exist_ok=True)
record_presets(names, captured, Captured,
               lambda c: None if c.get("cls") == "VisionTransformer" else f"model class {c.get('cls')}", encode, out)
