"""Turn a classification checkpoint of this suite into the backbone initialisation mmdet expects.

    python -m detection.convert_backbone runs/imagenet-resnet152-ps_kd/checkpoint.pt work_dirs/r152_pskd.pth

The classifier's ResNet uses torchvision's parameter names, which mmdet's ResNet shares; the classifier
(``fc``) is dropped. Every weight and buffer of mmdet's ``ResNet(depth)`` must be matched with the same
shape, else nothing is written and the unmatched keys are listed. Use the output as
``model.backbone.init_cfg = dict(type='Pretrained', checkpoint='work_dirs/r152_pskd.pth')``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from common.io import atomic_write

DEPTHS = {"resnet152": 152}


def convert(checkpoint: str | Path, out: str | Path) -> Path:
    from mmdet.models.backbones import ResNet

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "model" not in state or "config" not in state:
        raise ValueError(f"{checkpoint} is not a checkpoint of classification.train (no 'model' and 'config')")
    name = state["config"]["model"]["name"]
    if name not in DEPTHS:
        raise ValueError(f"{checkpoint} holds a {name!r}; mmdet's ResNet backbone takes {', '.join(DEPTHS)} "
                         "(train the classifier with model.name=resnet152)")
    expected = ResNet(depth=DEPTHS[name]).state_dict()
    weights = {k: v for k, v in state["model"].items() if not k.startswith("fc.")}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or unexpected or mismatched:
        raise ValueError(f"{checkpoint} does not match mmdet's ResNet-{DEPTHS[name]}: missing {missing[:10]}, "
                         f"unexpected {unexpected[:10]}, shape mismatches {mismatched[:10]}")
    payload = {"state_dict": weights, "meta": {"source": str(checkpoint), "model": name,
                                               "method": state["config"]["method"]["name"], "epoch": state["epoch"]}}
    return atomic_write(out, lambda f: torch.save(payload, f))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    path = convert(args.checkpoint, args.out)
    print(f"wrote {path}: every backbone weight matched")


if __name__ == "__main__":
    main()
