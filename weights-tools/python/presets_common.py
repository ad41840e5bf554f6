"""Shared by the dump_timm_*_presets.py scripts: build every model name with the model
class replaced by a stand-in that records its constructor kwargs (raising `captured_exc`),
keep the names whose kwargs wgvision can represent, and write them with the pretrained
preprocessing config to a JSON file the converter embeds."""
import json

import timm

PRETRAINED_KEYS = ("input_size", "mean", "std", "crop_pct", "crop_mode", "interpolation")


def pretrained(cfg):
    c = cfg.to_dict()
    return {k: (list(c[k]) if isinstance(c.get(k), tuple) else c.get(k)) for k in PRETRAINED_KEYS}


def record_presets(names, captured, captured_exc, why_not, encode, out):
    """`captured` is the dict the stand-in fills; `why_not(captured)` returns a reason to
    skip the name or None; `encode(key, value)` returns the JSON form or None."""
    presets, skipped = {}, {}
    for name in names:
        captured.clear()
        try:
            timm.create_model(name, pretrained=False)
        except captured_exc:
            pass
        except Exception as e:  # noqa: BLE001 - record why timm could not build it
            skipped[name] = f"{type(e).__name__}: {e}"[:120]
            continue
        reason = why_not(captured)
        if reason:
            skipped[name] = reason
            continue
        kwargs, bad = {}, []
        for k, v in captured["kwargs"].items():
            if k == "cache_dir":
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
            pre = pretrained(cfg)
        # Every pretrained tag's own preprocessing and class count
        # (`timm.create_model("NAME.TAG")` builds its head with the tag's num_classes).
        tags = {}
        for full in timm.list_pretrained(f"{name}.*"):
            c = timm.models.get_pretrained_cfg(full)
            if c is not None:
                tags[full.split(".", 1)[1]] = dict(pretrained(c), num_classes=c.to_dict().get("num_classes"))
        presets[name] = {"kwargs": kwargs, "pretrained_cfg": pre, "tags": tags}
    with open(out, "w") as f:
        json.dump({"timm_version": timm.__version__, "presets": presets, "unsupported": skipped}, f, indent=0, sort_keys=True)
    print(f"{len(presets)} presets, {len(skipped)} unsupported -> {out}")
