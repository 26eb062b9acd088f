"""Mean and standard deviation of a training folder: ``python -m classification.image_stats ROOT/train``.

Reads every image under ``ROOT/train/<class>/`` as RGB scaled to [0, 1] (resized first with
``--image-size``, as ``data.image_size`` would) and prints the per-channel mean and standard deviation
over all pixels, with the ``data.mean=... data.std=...`` overrides of ``data.name=image_folder`` to paste.
Use the training folder only: statistics that include the validation images leak them into training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from classification.data import UnreadableImage, class_folder
from common.cli import UserError, document_debug_flag, run_main


def channel_stats(folder: Path, image_size: int | None = None) -> tuple[list[float], list[float], int]:
    """(mean, std, number of images) of the images under ``folder/<class>/``, per RGB channel over every
    pixel: std = sqrt(E[x^2] - E[x]^2), accumulated in float64 (the population std, as ``Normalize`` expects)."""
    from torchvision import transforms

    steps = [transforms.Resize((image_size, image_size))] if image_size else []
    dataset = class_folder(folder, transforms.Compose([*steps, transforms.ToTensor()]))
    # One image a batch: the images of a user's folder may differ in size.
    loader = torch.utils.data.DataLoader(dataset, batch_size=1)
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    pixels = 0
    for image, _ in loader:
        flat = image[0].flatten(1).double()
        total += flat.sum(1)
        squares += (flat * flat).sum(1)
        pixels += flat.shape[1]
    mean = total / pixels
    std = (squares / pixels - mean * mean).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist(), len(dataset)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the training folder: ROOT/train, with one sub-folder per class")
    parser.add_argument("--image-size", type=int, help="resize every image to this square side first "
                                                        "(the run's data.image_size)")
    document_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.image_size is not None and args.image_size < 1:
        raise UserError(f"--image-size must be a positive number of pixels; got {args.image_size}")
    if (args.folder / "train").is_dir() and (args.folder / "val").is_dir():
        raise UserError(f"{args.folder} holds train/ and val/ (it is a data.root): give its training folder, "
                        f"python -m classification.image_stats {args.folder / 'train'}")
    mean, std, count = channel_stats(args.folder, args.image_size)

    def as_list(values: list[float]) -> str:
        return "[" + ",".join(f"{v:.4f}" for v in values) + "]"

    print(f"{count} images under {args.folder}")
    print(f"mean {' '.join(f'{v:.4f}' for v in mean)}")
    print(f"std  {' '.join(f'{v:.4f}' for v in std)}")
    print(f"data.mean={as_list(mean)} data.std={as_list(std)}")


if __name__ == "__main__":
    run_main(main, UnreadableImage)
