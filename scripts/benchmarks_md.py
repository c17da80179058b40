#!/usr/bin/env python3
"""Writes docs/benchmarks.md (to stdout) from the JSON files of `garmentnet bench`.

Usage: scripts/benchmarks_md.py RUNS_DIR NAME... [--int8 NAME...]; reads RUNS_DIR/NAME.json and,
when present, RUNS_DIR/NAME-active.json (the same model with OpenMP threads spinning,
OMP_WAIT_POLICY=ACTIVE), RUNS_DIR/train_step.json (bench/train_step_bench's Google Benchmark JSON)
and, for each NAME after --int8, RUNS_DIR/NAME-int8.json (`bench --model int8 --compare fp32`).
Called by scripts/bench.sh. Standard library only.
"""
import datetime
import json
import pathlib
import sys

EAGER = "eager (inference mode)"
OPTIMIZED = "optimized (frozen + optimize_for_inference)"


def rate(value):
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def forward_of(run, variant, batch):
    for m in run["forward"]:
        if m["variant"] == variant and m["batch_size"] == batch:
            return m["images_per_second"]
    return None


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def section(name, run, active):
    lines = [f"### {name}", ""]
    lines.append(
        f"`{run['architecture']}`, {run['input_width']}x{run['input_height']} input, "
        f"{run['parameters']:,} parameters, model file {run['model_file_bytes'] / 1e6:.2f} MB, "
        f"{run['flops_per_image'] / 1e6:.1f} MFLOPs per image "
        f"({run['macs_per_image'] / 1e6:.1f} M multiply-accumulates). "
        f"Measured fp32 convolution peak (oneDNN): {run['peak_gflops']:.1f} GFLOP/s with "
        f"{run['threads']} threads.")
    lines.append("")
    batches = sorted({m["batch_size"] for m in run["forward"]})
    variants = []
    for m in run["forward"]:
        if m["variant"] not in variants:
            variants.append(m["variant"])
    lines.append("| forward pass, images/s | " + " | ".join(f"batch {b}" for b in batches) +
                 " | best % of peak |")
    lines.append("|---|" + "---:|" * (len(batches) + 1))
    for variant in variants:
        cells = []
        best = 0.0
        for b in batches:
            for m in run["forward"]:
                if m["variant"] == variant and m["batch_size"] == b:
                    cells.append(rate(m["images_per_second"]))
                    best = max(best, m["fraction_of_peak"])
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {100 * best:.1f}% |")
    lines.append("")
    lines.append("| measurement | value |")
    lines.append("|---|---:|")
    lines.append(f"| decode + resize + normalise, {run['threads']} threads ({run['images_source']}) | "
                 f"{rate(run['decode_images_per_second'])} images/s |")
    lines.append(f"| decode full size + resize, 1 thread | "
                 f"{rate(run['decode_full_size_images_per_second_1_thread'])} images/s |")
    lines.append(f"| decode reduced size + resize, 1 thread | "
                 f"{rate(run['decode_reduced_images_per_second_1_thread'])} images/s |")
    lines.append(f"| decode reduced size + area-averaging resize, 1 thread | "
                 f"{rate(run['decode_reduced_area_images_per_second_1_thread'])} images/s |")
    for m in run["latency_batch_1"]:
        lines.append(f"| latency, batch 1, {m['variant']} | p50 {m['p50_ms']:.2f} ms, "
                     f"p99 {m['p99_ms']:.2f} ms |")
    e2e_batch = run["end_to_end_batch"]
    lines.append(f"| end-to-end predict, batch {e2e_batch} (decode overlapped with the model) | "
                 f"{rate(run['end_to_end_images_per_second'])} images/s |")
    lines.append(f"| Predictor on already decoded images, batch {e2e_batch} | "
                 f"{rate(run['predictor_forward_images_per_second'])} images/s |")
    reached = "reached" if run["end_to_end_target_reached"] else "NOT reached"
    lines.append(f"| end-to-end / optimised forward at batch {e2e_batch} (target >= 80%) | "
                 f"{100 * run['end_to_end_ratio']:.0f}% ({reached}) |")
    lines.append(f"| peak memory (RSS, whole benchmark) | {run['peak_rss_bytes'] / 1e6:.0f} MB |")
    lines.append("")

    big = max(batches)
    gains = [
        ("threads: optimised graph, all threads vs 1 thread (batch %d)" % big,
         ratio(forward_of(run, OPTIMIZED, big), forward_of(run, "optimized, 1 thread", big))),
        ("inference mode vs autograd (eager, batch %d)" % big,
         ratio(forward_of(run, EAGER, big), forward_of(run, "eager, autograd", big))),
        ("channels-last vs contiguous (eager, batch %d)" % big,
         ratio(forward_of(run, "eager, channels-last", big), forward_of(run, EAGER, big))),
        ("frozen graph (conv+BN folded) vs eager (batch %d)" % big,
         ratio(forward_of(run, "frozen (conv+BN folded)", big), forward_of(run, EAGER, big))),
        ("optimised graph vs eager, batch 1", ratio(forward_of(run, OPTIMIZED, 1),
                                                     forward_of(run, EAGER, 1))),
        ("optimised graph vs eager, batch %d" % big, ratio(forward_of(run, OPTIMIZED, big),
                                                           forward_of(run, EAGER, big))),
        ("reduced-size JPEG decoding vs full size (1 thread)",
         ratio(run["decode_reduced_images_per_second_1_thread"],
               run["decode_full_size_images_per_second_1_thread"])),
        ("the model's shrink filter vs area averaging, after reduced decoding (1 thread)",
         ratio(run["decode_reduced_images_per_second_1_thread"],
               run["decode_reduced_area_images_per_second_1_thread"])),
    ]
    if active:
        gains.append(("passive vs spinning OpenMP threads: optimised graph, batch 1",
                      ratio(forward_of(run, OPTIMIZED, 1), forward_of(active, OPTIMIZED, 1))))
        gains.append(("passive vs spinning OpenMP threads: optimised graph, batch %d" % big,
                      ratio(forward_of(run, OPTIMIZED, big), forward_of(active, OPTIMIZED, big))))
        gains.append(("passive vs spinning OpenMP threads: end-to-end predict",
                      ratio(run["end_to_end_images_per_second"],
                            active["end_to_end_images_per_second"])))
        gains.append(("end-to-end / forward with spinning threads",
                      f"{100 * active['end_to_end_ratio']:.0f}%"))
    lines.append("| gain (same run) | factor |")
    lines.append("|---|---:|")
    for label, value in gains:
        lines.append(f"| {label} | {value} |")
    lines.append("")
    return lines


def fastest_forward(run, batch):
    rates = [m["images_per_second"] for m in run["forward"] if m["batch_size"] == batch]
    return max(rates) if rates else None


def fastest_latency(run):
    return min(run["latency_batch_1"], key=lambda m: m["p50_ms"])


def int8_section(folder, names):
    """int8 against fp32, each model's pair measured in one `bench --compare` run."""
    lines = ["## Int8 against fp32", "",
             "Each model quantized by `garmentnet quantize` (docs/quantization.md) and measured "
             "beside its fp32 source in one run: `garmentnet bench --model int8.gnm --compare "
             "model.gnm --quick`. fp32 is the optimised graph (what `predict` and `serve` run); "
             "the ratio is int8 over fp32 (for latency and size: fp32 over int8, so above 1 "
             "is better everywhere). Issue 13's targets: forward >= 2x at batch 32 and "
             ">= 1.8x at batch 1, end to end >= 1.8x, file >= 3.5x smaller.", "",
             "| model | measurement | int8 | fp32 | ratio |", "|---|---|---:|---:|---:|"]
    for name in names:
        both = json.loads((folder / f"{name}-int8.json").read_text())
        int8, fp32 = both["model"], both["compared"]
        rows = []
        for batch in sorted({m["batch_size"] for m in int8["forward"]}):
            a, b = fastest_forward(int8, batch), forward_of(fp32, OPTIMIZED, batch)
            rows.append((f"forward, batch {batch}, images/s", rate(a), rate(b), ratio(a, b)))
        for key in ("p50_ms", "p99_ms"):
            a, b = fastest_latency(int8)[key], fastest_latency(fp32)[key]
            rows.append((f"latency, batch 1, {key[:3]}", f"{a:.2f} ms", f"{b:.2f} ms", ratio(b, a)))
        a, b = int8["end_to_end_images_per_second"], fp32["end_to_end_images_per_second"]
        rows.append((f"end-to-end predict, batch {int8['end_to_end_batch']}, images/s", rate(a),
                     rate(b), ratio(a, b)))
        a, b = int8["model_file_bytes"], fp32["model_file_bytes"]
        rows.append(("model file", f"{a / 1e6:.2f} MB", f"{b / 1e6:.2f} MB", ratio(b, a)))
        for i, (label, a, b, r) in enumerate(rows):
            model = f"{name} (`{int8['architecture']}`)" if i == 0 else ""
            lines.append(f"| {model} | {label} | {a} | {b} | {r} |")
    lines += ["", "Peak memory is left out here: the fp32 model is measured after the int8 one in "
              "the same process, so its figure includes the int8 run's. docs/quantization.md "
              "has what limits each model and the accuracy of each.", ""]
    return lines


def training_section(path):
    """The training-throughput table from bench/train_step_bench's JSON (Google Benchmark)."""
    rows = {}
    for b in json.loads(path.read_text())["benchmarks"]:
        _, backbone, side = b["name"].split("/")[:3]
        batch = b["name"].split("/")[3]
        rows.setdefault(backbone, {})[side] = (b["items_per_second"], batch)
    sides = sorted({side for cells in rows.values() for side in cells}, key=lambda s: int(s[:-2]))
    lines = ["## Training throughput", "",
             "One optimisation step (forward, two-head loss, backward, AdamW) of the whole model "
             "from scratch on a random batch, images/s, measured by `bench/train_step_bench` in "
             "the same `make bench` run. A frozen backbone with the feature cache trains its heads "
             "far faster than this (docs/training.md).", ""]
    lines.append("| backbone | " + " | ".join(
        f"{side} (batch {next(iter(rows.values()))[side][1]})" for side in sides) + " |")
    lines.append("|---|" + "---:|" * len(sides))
    for backbone, cells in rows.items():
        lines.append(f"| {backbone} | " + " | ".join(
            rate(cells[side][0]) if side in cells else "n/a" for side in sides) + " |")
    lines.append("")
    return lines


def main():
    folder = pathlib.Path(sys.argv[1])
    names = sys.argv[2:]
    int8_names = []
    if "--int8" in names:
        int8_names = names[names.index("--int8") + 1:]
        names = names[:names.index("--int8")]
    runs = {n: json.loads((folder / f"{n}.json").read_text()) for n in names}
    active = {}
    for n in names:
        path = folder / f"{n}-active.json"
        if path.exists():
            active[n] = json.loads(path.read_text())
    first = runs[names[0]]
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (scripts/bench.sh → `garmentnet bench` → "
        f"scripts/benchmarks_md.py) on {datetime.date.today().isoformat()}: "
        f"{first['cpu']}, {first['threads']} threads, LibTorch 1.13 (Debian), float32.",
        "",
        "**Read the ratios, not the absolute figures.** This machine is a small shared virtual "
        "machine (2 cores, other jobs compiling beside the benchmark), so absolute rates move by "
        "2x between runs; ratios between rows of one run (measured minutes apart, medians of "
        "repeated passes) are what carries over. Run `make bench` on your own machine for "
        "figures that mean something there.",
        "",
        "What each row is (docs: `garmentnet bench --help`):",
        "",
        "- *eager, autograd, 1 thread*: the C++ model as LibTorch runs it by default (one intra-op "
        "thread, gradients recorded). *eager, autograd*: the same with all threads. "
        "*eager (inference mode)*: `torch::InferenceMode`. *eager, channels-last*: weights and "
        "input in NHWC memory.",
        "- *traced TorchScript*: the model traced into a TorchScript graph in C++ (weights as "
        "constants). *frozen*: `torch::jit::freeze` (conv + batch-norm folding, constant "
        "folding, dropout removed). *optimized*: frozen + `torch::jit::optimize_for_inference` "
        "(oneDNN convolutions, conv + add/relu fusion) — what the Predictor runs, so `predict`, "
        "`evaluate` and `serve` get it.",
        "- FLOPs = 2 × multiply-accumulates of the convolutions and linear layers, counted from "
        "the shapes recorded in the traced graph (element-wise work left out). % of peak = "
        "achieved FLOP/s over the fp32 throughput of oneDNN's convolutions (the engine the "
        "models' convolutions run on: a 3x3, 256-channel convolution at 14x14, batch 32, "
        "channels-last, best of several runs) measured in the same run with the same threads. "
        "(It used to be a `torch::mm` through OpenBLAS, which some machines pin to older kernels "
        "than oneDNN's: values above 100% were printed.)",
        "- End to end = images decoded from JPEG (synthetic 217×301 photos like the original "
        "data) on a thread pool while the Predictor runs the previous batch, as `predict` does; "
        "the target is >= 80% of the optimised forward pass alone at the same batch size.",
        "",
        "## Results",
        "",
    ]
    for n in names:
        out += section(n, runs[n], active.get(n))
    if int8_names:
        out += int8_section(folder, int8_names)
    training = folder / "train_step.json"
    if training.exists():
        out += training_section(training)
    out += [
        "## What paid, what did not",
        "",
        "- **Frozen + optimize_for_inference TorchScript graph: kept, the default** — about 2x "
        "the eager model at large batches (1.9-2.4x) and 1.6x at batch 1, except mobilenet_v2 at "
        "64 px, whose batch-1 pass is mostly thread synchronisation (below). The Predictor builds it when it loads a model (traced at batch 2; the graph "
        "takes any batch size), checks it against the eager model on a probe batch of 3 random "
        "images (largest probability difference <= 1e-4) and falls back to the eager model with "
        "a warning if building or the check fails; `PredictorOptions::optimize = false` turns it "
        "off. Freezing alone (conv + batch-norm folding) gives little; most of the gain is "
        "oneDNN's convolutions from optimize_for_inference.",
        "- **OpenMP threads that sleep instead of spinning: kept** (`garmentnet` sets "
        "`OMP_WAIT_POLICY=PASSIVE` for itself unless you set the variable). In `bench` alone "
        "spinning now measures the same at large batches and end to end (passive/spinning "
        "0.97-1.21x) and is faster at batch 1 (passive/spinning 0.27-0.76x), but where other "
        "threads share the cores spinning starves them: `serve` answered 1161 requests/s with "
        "passive threads against 798 with spinning ones (small_cnn, concurrency 32, same "
        "session), at about the same batch-1 latency (2.0 against 2.3 ms). With glibc's "
        "allocator (before tcmalloc, below) passive waiting was also 1.5-7x faster end to end. "
        "`OMP_WAIT_POLICY=ACTIVE garmentnet ...` spins.",
        "- **Inference mode: kept** (1.0-1.2x over recording autograd at large batches; more "
        "with the eager fallback's memory).",
        "- **Threads: kept, set explicitly** to the cores available (`--threads`; LibTorch would "
        "use one): 1.6-1.9x for the optimised graph at large batches.",
        "- **tcmalloc as the allocator: kept** (linked into every garmentnet binary). glibc's "
        "malloc gives every block above its mmap threshold (at most 32 MiB) back to the kernel "
        "when it is freed, so each forward pass of a large batch page-faulted its activations in "
        "again. Measured on one binary with and without `LD_PRELOAD` of Debian's "
        "libtcmalloc_minimal (`bench --quick`, same session): mobilenet_v2 at 224 px, batch 32: "
        "97 -> 200 images/s, end to end 91 -> 192, system CPU time 19 -> 3.8 s; small_cnn at "
        "batch 64: 1219 -> 1702 images/s; mobilenet_v2 at 64 px: 2051 -> 2383. jemalloc "
        "(Debian's defaults) did not help (66 images/s at batch 32). Training got faster too "
        "(small_cnn at 64 px: 207 images/s on 2026-11-29 with glibc's malloc, 337 on 2026-11-30 "
        "with tcmalloc), and `serve`'s memory stopped growing (serving-benchmarks.md).",
        "- **Channels-last: not kept.** It speeds the eager model up (1.4-1.6x at large batches) "
        "but the optimised graph is faster still and chooses its own (oneDNN) layout; it would "
        "only matter for the eager fallback.",
        "- **Reduced-size JPEG decoding: kept** (in data/image: decode at 1/2, 1/4 or 1/8 scale "
        "when the photo is at least that much larger than the input): 1.7x faster decoding for "
        "64 px inputs; nothing changes at 224 px for 217×301 photos.",
        "- **Bilinear shrinking below 2x: kept, the default of new models** (preprocessing "
        "`shrink`: `linear`; docs/images.md). After reduced decoding a photo is often less than "
        "twice the input size; interpolating then costs less than area averaging and trained to "
        "the same accuracy (built-in target split from 224 px photos at 64 px, same seed: test "
        "top-1 0.597 against 0.600, top-2 0.823 against 0.816, tag F1 0.968 against 0.972). "
        "224×224 photos at 64 px: 7327 against 5379 decoded images/s on one thread (1.36x). The "
        "synthetic 217×301 photos above are still 2.4x taller than the input after 1/2-scale "
        "decoding, so they are area-averaged either way (1.00x).",
        "- **JPEG decoding with libjpeg-turbo directly, straight into RGB: kept.** A perf profile "
        "of `predict` (mobilenet_v2, 64 px, 217×301 JPEGs) showed 7% of all its CPU in one "
        "scalar loop of OpenCV's JPEG decoder, which has libjpeg write RGB rows and swaps each to "
        "BGR, which we then converted back to RGB. data/image now drives libjpeg itself (same "
        "library, same 1/2-1/8 DCT scaling, same EXIF orientation, identical pixels; CMYK JPEGs, "
        "PNG and WebP still go through OpenCV): 300 instead of 422 µs of CPU per photo "
        "(1/2-scale decode + resize to 64 px, one thread), full-size decoding 2x faster. In the "
        "predict profile, decoding went from 0.70x to 0.51x of the model's CPU time.",
        "- **Reduced-size decoding in `serve` too: kept.** The service decoded uploads at full "
        "size while `predict` decoded them reduced: slower, and slightly different pixels for "
        "the same photo. Both now decode the same way.",
        "- **Checked, not changed:** OpenCV's own threads (no OpenCV parallelism happens at these "
        "sizes: no TBB time in the profile, the same CPU time with `cv::setNumThreads(1)`); "
        "libjpeg's 3/8 scale, fast integer IDCT or plain chroma upsampling (within 3% of the "
        "1/2-scale default); the end-to-end figure is compared with the optimised forward pass at "
        "the same batch size (64).",
        "- **End-to-end target (>= 80% of the forward pass): reached for small_cnn at 64 px and "
        "mobilenet_v2 at 224 px, not for mobilenet_v2 at 64 px with 217×301 photos.** On 2 "
        "cores decoding and the model share the same cores, so end-to-end can at best reach "
        "model CPU / (model CPU + decode CPU) of the forward rate. For mobilenet_v2 at 64 px "
        "(25 M multiply-accumulates per image) the optimised forward pass at batch 64 costs "
        "2 cores / 2529 images/s = 0.79 ms of CPU per image, and reading, decoding, resizing and "
        "normalising one 217×301 JPEG costs 2 / 6837 = 0.29 ms: a ceiling of 73%, which the "
        "measured 74% meets. Reaching 80% needs decoding at most a quarter of the model's CPU: "
        "photos stored nearer the input size (224×224 photos reach 87% with small_cnn), a "
        "costlier model (mobilenet_v2 at 224 px: 96%), or more cores.",
        "- **Tried, not kept: one thread for small batches.** With passive OpenMP waiting, two "
        "threads make mobilenet_v2's many small layers wait for each other: at batch 1 the "
        "optimised graph runs 4x faster on one thread (*optimized, 1 thread* row). Choosing the "
        "thread count per forward pass does not work with oneDNN: `at::set_num_threads` clears "
        "oneDNN's primitive cache (its kernels must run with the thread count they were built "
        "for), so every switch rebuilt them and a lone `serve` request took 8 ms instead of "
        "1.8 ms. One thread for the whole process would halve large-batch throughput.",
        "",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
