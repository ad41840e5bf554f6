"""Record the constructor kwargs timm passes for every SwinTransformer model name (and
the pretrained preprocessing config) into weights-tools/data/timm_swin_presets.json, so
`--from timm --model swin_* --set ...` builds exactly what timm.create_model would.
Run: python weights-tools/python/dump_timm_swin_presets.py
"""
import os

import timm
import timm.models.swin_transformer as st
from torch import nn

from presets_common import record_presets

captured = {}


class Captured(Exception):
    pass


class CaptureSwin:
    def __init__(self, **kwargs):
        captured["kwargs"] = kwargs
        raise Captured()


st.SwinTransformer = CaptureSwin


def encode(key, value):
    if key == "norm_layer":
        return "layernorm" if value is nn.LayerNorm or value == "layernorm" else None
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        flat = [list(v) if isinstance(v, (tuple, list)) else v for v in value]
        return flat
    return None


out = os.path.join(os.path.dirname(__file__), "..", "data", "timm_swin_presets.json")
record_presets(sorted(timm.list_models("swin_*")), captured, Captured,
               lambda c: None if "kwargs" in c else "not a SwinTransformer", encode, out)
