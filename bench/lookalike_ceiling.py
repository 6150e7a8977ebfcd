"""How learnable is the look-alike? A supervised ceiling probe, independent of the VLM.

A small CNN is trained with labels on (test image, test - reference) pixels of look-alike
training pairs and scored on the seed-0 paper-scale test split. With the benchmark's 600 training
pairs, or with more pairs pooled from look-alikes of other seeds (the generator is unlimited),
it tells whether a from-scratch policy can be expected to beat chance at all.

    .venv/bin/python bench/lookalike_ceiling.py --extra-seeds 0      # the 600 training pairs
    .venv/bin/python bench/lookalike_ceiling.py --extra-seeds 3      # + all pairs of seeds 1-3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from fadtq.prompts import CLASS_NAMES

REPO = Path(__file__).resolve().parents[1]


def benchmark(root: Path, seed: int) -> Path:
    from fadtq.data.pair3c import build_pair3c, write_benchmark
    from fadtq.data.synth import synthesize

    synthesize(root / f"loco{seed}", seed=seed, scale="paper", progress=False)
    return write_benchmark(build_pair3c(root / f"loco{seed}", seed=seed), root / f"bench{seed}")


def tensors(manifests: list[Path], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from fadtq.data.dataset import PairDataset

    features, labels = [], []
    for manifest in manifests:
        for pair in PairDataset(manifest, max_side=size):
            test = np.asarray(pair.test_image.resize((size, size)), dtype=np.float32) / 255
            ref = np.asarray(pair.ref_image.resize((size, size)), dtype=np.float32) / 255
            features.append(np.concatenate([test, test - ref], -1).transpose(2, 0, 1))
            labels.append(CLASS_NAMES.index(pair.label))
    return torch.tensor(np.stack(features)), torch.tensor(labels)


def cnn() -> torch.nn.Module:
    def block(c_in: int, c_out: int) -> list[torch.nn.Module]:
        return [torch.nn.Conv2d(c_in, c_out, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]

    return torch.nn.Sequential(*block(6, 32), *block(32, 64), torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 3))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra-seeds", type=int, default=0, help="pool all pairs of look-alikes of seeds 1..N")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        base = benchmark(Path(tmp), 0)
        extra = [benchmark(Path(tmp), s) for s in range(1, args.extra_seeds + 1)]
        x_train, y_train = tensors([base / "train.jsonl"] + [b / f for b in extra for f in ("train.jsonl", "test.jsonl")],
                                   args.size)
        x_test, y_test = tensors([base / "test.jsonl"], args.size)
    model, best = cnn(), 0.0
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    majority = torch.bincount(y_test).max().item() / len(y_test)
    for epoch in range(args.epochs):
        for idx in torch.randperm(len(x_train)).split(32):
            loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        best = max(best, accuracy)
        print(f"epoch {epoch}: test accuracy {accuracy:.3f}", flush=True)
    print(f"{len(x_train)} training pairs: best test accuracy {best:.3f} (majority class {majority:.3f})")
    from fadtq.io import atomic_write_json

    out = REPO / "bench" / "results" / f"lookalike_ceiling_{len(x_train)}_{args.size}px.json"
    atomic_write_json(out, {"training_pairs": len(x_train), "size": args.size, "epochs": args.epochs,
                            "best_test_accuracy": best, "majority_class": majority})
    return 0


if __name__ == "__main__":
    sys.exit(main())
