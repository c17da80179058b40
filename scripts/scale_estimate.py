#!/usr/bin/python3
"""Markdown tables for docs/scale-out.md from scripts/bench-distributed.sh's measurements.

Measured (one JSON line per backbone): training images/s of 1 rank x 2 threads and of 2 ranks x 1
thread, the 2-rank step time, the part of it spent waiting for the gradients' all-reduce after the
backward pass (the rest of the all-reduce overlaps the backward pass), MB all-reduced per step.

Estimate, on paper: N machines, each computing a step of its batch in t_c (the measured 2-rank
step time minus its gradient averaging, i.e. one of these cores per rank), all-reducing B bytes
with a ring all-reduce over links of b bytes/s and latency a per message:
    t_ar(N) = 2 (N - 1) / N * B / b + 2 (N - 1) * a
and, conservatively, as if none of the all-reduce overlapped the backward pass (garmentnet starts
each bucket's all-reduce during it; on 2 cores the same cores compute and move the bytes, so what
a network would hide cannot be measured here):
    efficiency(N) = t_c / (t_c + t_ar(N)).
The a = 50 us per hop is a typical TCP figure for a data-centre network, not measured here.
"""
import json
import sys

LATENCY_S = 50e-6


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1])]
    side = sys.argv[2]
    print(f"Measured on this machine's loopback, {side} px, one epoch from scratch:\n")
    print("| backbone | 1 rank × 2 threads | 2 ranks × 1 thread | ratio | 2-rank step | "
          "waiting for gradients after backward | all-reduced per step |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backbone']} | {r['one_rank_images_per_s']:.1f} img/s | "
              f"{r['two_ranks_images_per_s']:.1f} img/s | "
              f"{r['two_ranks_images_per_s'] / r['one_rank_images_per_s']:.2f} | "
              f"{r['step_ms']:.0f} ms | {r['comm_ms']:.1f} ms ({100 * r['comm_ms'] / r['step_ms']:.0f} %) | "
              f"{r['mb']:.1f} MB |")
    print("\nEstimated scaling efficiency t_c / (t_c + t_ar(N)) with the measured per-rank compute "
          "time t_c of a batch of 32 on one core:\n")
    header = [f"{n} × {g} Gbit/s" for g in (10, 25) for n in (4, 16, 64)]
    print("| backbone | t_c | " + " | ".join(header) + " |")
    print("|---|---|" + "---|" * len(header))
    for r in rows:
        compute = (r["step_ms"] - r["comm_ms"]) / 1e3
        size = r["mb"] * 1e6
        cells = []
        for gbit in (10, 25):
            for n in (4, 16, 64):
                allreduce = 2 * (n - 1) / n * size / (gbit * 1e9 / 8) + 2 * (n - 1) * LATENCY_S
                cells.append(f"{100 * compute / (compute + allreduce):.0f} %")
        print(f"| {r['backbone']} | {1e3 * compute:.0f} ms | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
