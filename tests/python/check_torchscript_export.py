#!/usr/bin/python3
"""Checks a model exported with `garmentnet export --format torchscript` from Python.

Used by tests/integration/export_test.cpp, which writes into DIR:
  expected.json  {"input_shape": [N, 3, H, W], "heads": {name: [N, outputs]}, plus the
                  attributes the module must carry: head_names, head_kinds, labels,
                  thresholds, input_size, mean, std, resize, shrink}
  input.f32      the normalised input batch, float32, C order
  <head>.f32     the probabilities garmentnet's Predictor computed for it, one file per head
Loads the module with torch.jit.load (as TorchServe and Triton's PyTorch backend do), checks its
attributes and its garmentnet.json extra file, runs it and compares the outputs. Exit code 0
when everything matches, 1 otherwise (with the reason on stderr).
"""
import json
import pathlib
import sys

import numpy
import torch

TOLERANCE = 1e-5


def read_floats(path: pathlib.Path, shape) -> torch.Tensor:
    return torch.from_numpy(numpy.fromfile(path, dtype=numpy.float32).reshape(shape))


def main() -> int:
    model_path, folder = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    expected = json.loads((folder / "expected.json").read_text())
    extra = {"garmentnet.json": ""}
    # Int8 models prepack their weights for the quantized engine when loaded; garmentnet's is oneDNN.
    if "onednn" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "onednn"
    module = torch.jit.load(str(model_path), map_location="cpu", _extra_files=extra)
    module.eval()

    problems = []
    for name in ["head_names", "head_kinds", "labels", "input_size", "resize", "shrink"]:
        if getattr(module, name) != expected[name]:
            problems.append(f"attribute {name}: {getattr(module, name)!r} != {expected[name]!r}")
    for name in ["mean", "std"]:
        if not numpy.allclose(getattr(module, name), expected[name], atol=1e-6):
            problems.append(f"attribute {name}: {getattr(module, name)} != {expected[name]}")
    for head, values in expected["thresholds"].items():
        if not numpy.allclose(module.thresholds[head], values, atol=1e-9):
            problems.append(f"thresholds of {head}: {module.thresholds[head]} != {values}")
    description = json.loads(extra["garmentnet.json"])
    if [o["head"] for o in description["outputs"]] != expected["head_names"]:
        problems.append(f"garmentnet.json outputs: {description['outputs']}")

    images = read_floats(folder / "input.f32", expected["input_shape"])
    with torch.inference_mode():
        outputs = module(images)
    if len(outputs) != len(expected["head_names"]):
        problems.append(f"{len(outputs)} outputs for heads {expected['head_names']}")
    for head, output in zip(expected["head_names"], outputs):
        reference = read_floats(folder / f"{head}.f32", expected["heads"][head])
        difference = (output - reference).abs().max().item()
        if output.shape != reference.shape or difference > TOLERANCE:
            problems.append(f"head {head}: shape {tuple(output.shape)}, max difference {difference}")

    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"ok: {len(outputs)} heads match for {images.shape[0]} images")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
