"""Record the config timm builds every MaxViT model name from (its MaxxVitCfg, nested
conv_cfg / transformer_cfg, plus the constructor kwargs and the pretrained preprocessing
config) into weights-tools/data/timm_maxvit_presets.json, so `--from timm --model
maxvit_* --set ...` builds exactly what timm.create_model would.
Run: python weights-tools/python/dump_timm_maxvit_presets.py
"""
import dataclasses
import os

import timm
import timm.models.maxxvit as mx

from presets_common import record_presets

captured = {}


class Captured(Exception):
    pass


class CaptureMaxxVit:
    def __init__(self, cfg, **kwargs):
        captured["kwargs"] = {"cfg": cfg, **kwargs}
        raise Captured()


mx.MaxxVit = CaptureMaxxVit


def plain(v):
    if isinstance(v, (tuple, list)):
        return [plain(x) for x in v]
    return v


def encode(key, value):
    if key == "cfg":
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return plain(value)
    return None


def why_not(c):
    if "kwargs" not in c:
        return "not a MaxxVit"
    cfg = c["kwargs"]["cfg"]
    types = {t for stage in cfg.block_type for t in (stage if isinstance(stage, tuple) else (stage,))}
    if types != {"M"}:
        return f"block types {sorted(types)} (wgvision builds MaxViT 'M' blocks)"
    if cfg.conv_cfg.block_type != "mbconv":
        return f"conv block {cfg.conv_cfg.block_type}"
    return None


out = os.path.join(os.path.dirname(__file__), "..", "data", "timm_maxvit_presets.json")
record_presets(sorted(timm.list_models("maxvit_*")), captured, Captured, why_not, encode, out)
