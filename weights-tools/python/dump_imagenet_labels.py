"""Write weights-tools/data/imagenet1k_labels.txt: the ImageNet-1k class names, one per
line in class-index order, as timm's ImageNetInfo describes them (the names
transformers' ImageNet checkpoints carry in id2label too), for classifiers whose model
file stores no names of its own.

    python dump_imagenet_labels.py
"""
import pathlib

from timm.data import ImageNetInfo

info = ImageNetInfo()
assert info.num_classes() == 1000
names = [info.index_to_description(i) for i in range(1000)]
assert all(n and "\n" not in n for n in names)
out = pathlib.Path(__file__).resolve().parents[1] / "data" / "imagenet1k_labels.txt"
out.write_text("\n".join(names) + "\n")
print(f"wrote {out} ({len(names)} names)")
