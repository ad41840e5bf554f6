"""Record the constructor kwargs timm passes for every SwinTransformer model name (and
the pretrained preprocessing config) into weights-tools/data/timm_swin_presets.json, so
`--from timm --model swin_* --set ...` builds exactly what timm.create_model would.
Run: python weights-tools/python/dump_timm_swin_presets.py
"""
import json
import os

import timm
import timm.models.swin_transformer as st
from torch import nn

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


presets, skipped = {}, {}
for name in sorted(timm.list_models("swin_*")):
    captured.clear()
    try:
        timm.create_model(name, pretrained=False)
    except Captured:
        pass
    except Exception as e:  # noqa: BLE001
        skipped[name] = f"{type(e).__name__}: {e}"[:120]
        continue
    if "kwargs" not in captured:
        skipped[name] = "not a SwinTransformer"
        continue
    kwargs, bad = {}, []
    for k, v in captured["kwargs"].items():
        if k in ("cache_dir",):
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

out = os.path.join(os.path.dirname(__file__), "..", "data", "timm_swin_presets.json")
with open(out, "w") as f:
    json.dump({"timm_version": timm.__version__, "presets": presets, "unsupported": skipped}, f, indent=0, sort_keys=True)
print(f"{len(presets)} presets, {len(skipped)} unsupported -> {out}")
