#!/usr/bin/python3
"""Exports a torchvision network as a TorchScript feature extractor that garmentnet can train on.

The exported module maps normalised float images [N, 3, H, W] to pooled features [N, C]; the
classifier of the network is removed. Metadata (architecture, feature size, the input size and
mean/std the weights expect) travels inside the file as the extra file `garmentnet.json`.

    /usr/bin/python3 tools/export_torchvision_backbone.py --arch resnet18 --weights imagenet \
        --out resnet18.pt
    garmentnet train --backbone torchscript:resnet18.pt ...

`--random` exports untrained weights (no download), which is what the tests use.
"""
import argparse
import json
import pathlib
import sys

import torch
import torchvision

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
ARCHITECTURES = ["resnet18", "resnet50", "mobilenet_v2", "vgg16"]


class PooledVggFeatures(torch.nn.Module):
    """VGG's convolutional part followed by a global average pool (no 7×7 pool, no classifier)."""

    def __init__(self, features: torch.nn.Module):
        super().__init__()
        self.features = features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(self.features(images), 1), 1)


def build_extractor(arch: str, pretrained: bool) -> torch.nn.Module:
    weights = "IMAGENET1K_V1" if pretrained else None
    network = getattr(torchvision.models, arch)(weights=weights)
    if arch.startswith("resnet"):
        network.fc = torch.nn.Identity()  # forward already pools and flattens before fc
        return network
    if arch == "mobilenet_v2":
        network.classifier = torch.nn.Identity()  # forward pools and flattens before classifier
        return network
    return PooledVggFeatures(network.features)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", required=True, choices=ARCHITECTURES)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", choices=["imagenet"],
                        help="download torchvision's ImageNet weights (needs network access)")
    source.add_argument("--random", action="store_true",
                        help="random initial weights (no download; for tests)")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="TorchScript file to write")
    parser.add_argument("--input-size", type=int, default=224,
                        help="input side the weights expect, recorded in the metadata")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random weights")
    parser.add_argument("--save-example", type=pathlib.Path, metavar="DIR",
                        help="also write a fixed input and this module's output on it "
                             "(input.f32, output.f32 raw little-endian float32, example.json)")
    parser.add_argument("--example-size", type=int, default=32,
                        help="image side of the --save-example input")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    extractor = build_extractor(args.arch, pretrained=args.weights == "imagenet").eval()
    scripted = torch.jit.script(extractor)
    with torch.no_grad():
        probe = scripted(torch.zeros(1, 3, 64, 64))
    if probe.dim() != 2:
        print(f"error: {args.arch} gave features of shape {list(probe.shape)}, expected [N, C]",
              file=sys.stderr)
        return 1

    metadata = {
        "format": "garmentnet-torchscript-backbone",
        "architecture": args.arch,
        "weights": args.weights or "random",
        "feature_dim": int(probe.shape[1]),
        "input_size": args.input_size,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_name(args.out.name + ".tmp")
    torch.jit.save(scripted, str(temporary), _extra_files={"garmentnet.json": json.dumps(metadata)})
    temporary.replace(args.out)

    if args.save_example:
        args.save_example.mkdir(parents=True, exist_ok=True)
        generator = torch.Generator().manual_seed(args.seed + 1)
        images = torch.randn(2, 3, args.example_size, args.example_size, generator=generator)
        with torch.no_grad():
            features = scripted(images)
        images.numpy().astype("<f4").tofile(args.save_example / "input.f32")
        features.numpy().astype("<f4").tofile(args.save_example / "output.f32")
        (args.save_example / "example.json").write_text(json.dumps(
            {"input_shape": list(images.shape), "output_shape": list(features.shape)}))

    print(f"wrote {args.out}: {args.arch} ({metadata['weights']} weights), "
          f"{metadata['feature_dim']} features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
