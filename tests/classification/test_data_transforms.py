"""The data recipes of the official PS-KD code (loader/custom_dataloader.py, utils/custom_transform.py),
checked against transcriptions written here from those files."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from classification.config import ConfigError, load_config
from classification.data import Lighting, TensorColorJitter, cifar100_transforms, imagenet_transforms

# loader/custom_dataloader.py (cifar100 branch) and alinlab/cs-kd datasets.py
OFFICIAL_CIFAR100 = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
# loader/custom_dataloader.py (imagenet branch)
OFFICIAL_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
OFFICIAL_EIGVAL = [0.2175, 0.0188, 0.0045]
OFFICIAL_EIGVEC = [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]


def _image(width=400, height=300, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _normalize(array, stats):
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in stats)
    return (torch.from_numpy(array.astype(np.float32) / 255).permute(2, 0, 1) - mean) / std


def test_cifar100_normalisation_is_the_official_loaders():
    for tf in cifar100_transforms():
        normalize = tf.transforms[-1]
        assert isinstance(normalize, transforms.Normalize)
        assert (tuple(normalize.mean), tuple(normalize.std)) == OFFICIAL_CIFAR100
    train, _ = cifar100_transforms()
    assert [type(t) for t in train.transforms[:3]] == [transforms.RandomCrop, transforms.RandomHorizontalFlip,
                                                       transforms.ToTensor]
    assert train.transforms[0].padding == 4


def test_official_imagenet_transform_structure_and_shapes():
    train, val = imagenet_transforms("official")
    kinds = [type(t) for t in train.transforms]
    assert kinds == [transforms.RandomResizedCrop, transforms.RandomHorizontalFlip, transforms.ToTensor,
                     TensorColorJitter, Lighting, transforms.Normalize]
    crop, _, _, jitter, lighting, normalize = train.transforms
    assert tuple(crop.size) == (224, 224) and crop.scale == (0.08, 1.0)
    assert (jitter.brightness, jitter.contrast, jitter.saturation) == (0.4, 0.4, 0.4)
    assert lighting.alphastd == pytest.approx(0.1)
    assert lighting.eigval.tolist() == pytest.approx(OFFICIAL_EIGVAL)
    assert lighting.eigvec.flatten().tolist() == pytest.approx([v for row in OFFICIAL_EIGVEC for v in row])
    assert (tuple(normalize.mean), tuple(normalize.std)) == OFFICIAL_IMAGENET
    torch.manual_seed(0)
    assert train(_image()).shape == (3, 224, 224)
    # Validation: shorter side to 256 (400 x 300 -> 341 x 256), then the central 224 x 224.
    image = _image()
    resized = np.asarray(image.resize((341, 256), Image.BILINEAR))
    expected = _normalize(resized[16:240, 58:282], OFFICIAL_IMAGENET)
    torch.testing.assert_close(val(image), expected, atol=1e-5, rtol=0)


def test_supplement_imagenet_transform_squashes_to_256_square():
    train, val = imagenet_transforms("supplement")
    assert [type(t) for t in train.transforms] == [transforms.Resize, transforms.RandomCrop,
                                                   transforms.RandomHorizontalFlip, transforms.ToTensor,
                                                   transforms.Normalize]
    torch.manual_seed(0)
    assert train(_image()).shape == (3, 224, 224)
    image = _image()
    squashed = np.asarray(image.resize((256, 256), Image.BILINEAR))
    torch.testing.assert_close(val(image), _normalize(squashed[16:240, 16:240], OFFICIAL_IMAGENET), atol=1e-5, rtol=0)


def test_unknown_imagenet_transform_is_refused_with_the_key():
    with pytest.raises(ValueError, match=r"data\.imagenet_transform"):
        imagenet_transforms("bilinear")
    with pytest.raises(ConfigError, match=r"data\.imagenet_transform"):
        load_config(None, ["data.imagenet_transform=bilinear"])
    assert load_config("imagenet_resnet152").data.imagenet_transform == "official"


def test_lighting_adds_the_official_pca_noise():
    img = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    got = Lighting(0.1)(img)
    torch.manual_seed(3)
    alpha = img.new().resize_(3).normal_(0, 0.1).tolist()  # as utils/custom_transform.py draws it
    rgb = [sum(OFFICIAL_EIGVEC[i][j] * alpha[j] * OFFICIAL_EIGVAL[j] for j in range(3)) for i in range(3)]
    torch.testing.assert_close(got, img + torch.tensor(rgb).view(3, 1, 1))
    assert torch.equal(Lighting(0.0)(img), img)


def _factor(out, img, centre):
    """The one factor f with out = centre + f * (img - centre), which must hold at every pixel."""
    away = (img - centre).abs() > 0.05
    ratio = (out - centre)[away] / (img - centre)[away]
    assert away.sum() > 50 and ratio.std() < 1e-4
    return ratio.mean().item()


@pytest.mark.parametrize("part", ["brightness", "contrast", "saturation"])
def test_colour_jitter_parts_scale_about_black_mean_grey_or_greyscale(part):
    img = torch.rand(3, 6, 6, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    grey = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    centre = {"brightness": torch.zeros_like(img), "contrast": grey.mean().expand_as(img),
              "saturation": grey.expand_as(img)}[part]
    jitter = TensorColorJitter(**{k: (0.4 if k == part else 0.0) for k in ("brightness", "contrast", "saturation")})
    factors = []
    for seed in range(20):
        torch.manual_seed(seed)
        factors.append(_factor(jitter(img), img, centre))
    assert all(0.6 - 1e-4 <= f <= 1.4 + 1e-4 for f in factors) and max(factors) - min(factors) > 0.2


def test_colour_jitter_is_not_clamped_like_the_official_one():
    img = torch.full((3, 4, 4), 0.95)
    outs = []
    for seed in range(10):
        torch.manual_seed(seed)
        outs.append(TensorColorJitter(0.4, 0.0, 0.0)(img).max().item())
    assert max(outs) > 1.0  # torchvision's ColorJitter would clamp to 1
