#!/usr/bin/python3
"""PyTorch's own int8 speed, to set beside `garmentnet bench` (docs/quantization.md).

torchvision's resnet18 and mobilenet_v2 (random weights: speed does not depend on them) are
quantized with PyTorch's FX graph mode on the onednn engine (qconfig "onednn", calibrated on 8
random images), then each forward pass is timed at each batch size on a freshly converted model
(a model that has run one batch size fails at another on AVX-512 VNNI CPUs: docs/quantization.md),
and once more in sequence on one model, to show that failure. Run with Debian's python3-torch:
/usr/bin/python3 scripts/pytorch-int8-speed.py [--threads 2] [--seconds 5] [--size 224].
"""
import argparse
import copy
import json
import time

import torch
import torchvision
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx


def images_per_second(model, batch, size, seconds):
    images = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        for _ in range(3):
            model(images)
        runs, start = 0, time.perf_counter()
        while runs < 3 or time.perf_counter() - start < seconds:
            model(images)
            runs += 1
    return runs * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-sizes", default="1,32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "onednn"
    batches = [int(b) for b in args.batch_sizes.split(",")]
    with open("/proc/cpuinfo") as cpuinfo:
        flags = cpuinfo.read()
    results = {"torch": torch.__version__, "threads": args.threads,
               "avx512_vnni": "avx512_vnni" in flags, "avx512f": "avx512f" in flags}
    for name in ["resnet18", "mobilenet_v2"]:
        model = getattr(torchvision.models, name)().eval()
        example = (torch.randn(1, 3, args.size, args.size),)
        prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("onednn"), example)
        with torch.inference_mode():
            prepared(torch.randn(8, 3, args.size, args.size))
        figures = {}
        for batch in batches:
            figures[f"fp32 batch {batch}"] = images_per_second(model, batch, args.size, args.seconds)
            int8 = convert_fx(copy.deepcopy(prepared))
            figures[f"int8 batch {batch}"] = images_per_second(int8, batch, args.size, args.seconds)
        one = convert_fx(copy.deepcopy(prepared))
        sequence = []
        for batch in [1, 8, 32, 1]:
            try:
                with torch.inference_mode():
                    one(torch.randn(batch, 3, args.size, args.size))
                sequence.append(f"{batch}: ok")
            except RuntimeError as error:
                sequence.append(f"{batch}: {str(error).splitlines()[0]}")
        figures["int8 batch sizes 1, 8, 32, 1 on one model"] = sequence
        results[name] = figures
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
