"""What the integrity checks cost, printed from one run (never asserted: these machines are noisy).

Every read of a prepared split checks its SHA-256 against prepared.json (once per job and split);
every checkpoint carries the SHA-256 of its contents (computed at each save, so once per epoch, and
checked on resume); model.pt's SHA-256 goes into run.json and is checked by every reader. This script
times each check beside the work it guards, interleaved with it, the best of `--repeats` rounds
(benchmarks/timing.py):

- each prepared split of `--dataset`: `load_split` (with the check) against a bare `torch.load`;
- a checkpoint's contents (weights, SGD momentum, RNG states) for each of `--models`:
  `content_digest` against the `torch.save` it joins;
- one epoch of the demo recipe (config/demo.yaml's train settings, ResNet-8 on 24,000 Fashion-MNIST
  images, trained here), and the checks' share of it.

    python benchmarks/verification.py                      # Fashion-MNIST under data/, CPU
    python benchmarks/verification.py --models resnet56 wrn28_10 --skip-epoch
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import torch
import yaml
from timing import best_seconds

import orthoreg
from orthoreg.checkpoint import capture_rng_state, content_digest
from orthoreg.config import TrainConfig
from orthoreg.data import load_split, prepare_dataset
from orthoreg.train import train

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def split_costs(dataset: str, data_dir: Path, repeats: int) -> dict[str, float]:
    """Seconds of the SHA-256 check per split: a checked load minus a bare torch.load."""
    prepare_dataset(dataset, data_dir)
    costs = {}
    for split in ("train", "test"):
        path = data_dir / dataset / f"{split}.pt"
        actions = {
            "checked": lambda split=split: load_split(dataset, data_dir, split),
            "bare": lambda path=path: torch.load(path, weights_only=True),
        }
        best = best_seconds(actions, CPU, repeats, warmup=0)
        checked, bare = best["checked"], best["bare"]
        size = path.stat().st_size / 2**20
        print(
            f"{dataset} {split}.pt ({size:.0f} MiB): checked load {checked:.3f} s, bare {bare:.3f} s, check {checked - bare:+.3f} s"
        )
        costs[split] = checked - bare
    return costs


def checkpoint_cost(model_name: str, repeats: int) -> float:
    """Seconds of content_digest on a checkpoint's contents, beside the torch.save it joins."""
    model = orthoreg.build_model(model_name, num_classes=100)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    contents = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": capture_rng_state()}
    actions = {"digest": lambda: content_digest(contents), "save": lambda: torch.save(contents, io.BytesIO())}
    best = best_seconds(actions, CPU, repeats, warmup=0)
    digest, save = best["digest"], best["save"]
    buffer = io.BytesIO()
    torch.save(contents, buffer)
    print(
        f"{model_name} checkpoint ({buffer.tell() / 2**20:.0f} MiB): digest {digest:.3f} s, "
        f"torch.save {save:.3f} s, digest/save {digest / save:.2f}"
    )
    return digest


def demo_epoch_seconds(data_dir: Path) -> float:
    """Seconds of one training epoch of config/demo.yaml's recipe (ResNet-8, `none`), trained here."""
    recipe = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())["train"]
    config = TrainConfig(model="resnet8", dataset="fashion_mnist", regularizer="none", threads=1, **recipe)
    with tempfile.TemporaryDirectory() as out:
        record = train(config, out, data_dir, verbose=False)
    return record["seconds_per_epoch"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--models", nargs="+", default=["resnet8", "resnet56", "wrn28_10"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-epoch", action="store_true", help="leave out the demo epoch")
    args = parser.parse_args()
    torch.set_num_threads(1)

    splits = split_costs(args.dataset, args.data_dir, args.repeats)
    digests = {name: checkpoint_cost(name, args.repeats) for name in args.models}
    if args.skip_epoch or args.dataset != "fashion_mnist":
        return
    epoch = demo_epoch_seconds(args.data_dir)
    per_job = sum(splits.values())
    print(f"demo epoch (ResNet-8, 24,000 images, 1 thread): {epoch:.1f} s")
    print(f"  data checks, once per job: {per_job:.3f} s = {per_job / epoch:.2%} of the epoch")
    if "resnet8" in digests:
        print(
            f"  checkpoint digest, once per epoch: {digests['resnet8']:.4f} s = {digests['resnet8'] / epoch:.3%}"
        )


if __name__ == "__main__":
    main()
