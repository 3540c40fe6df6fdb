"""The CUDA paths, on a GPU; every test is skipped cleanly without one (benchmarks/gpu_check.py runs
them on a lent GPU). Penalties stay fp32 under bf16 autocast; channels-last and torch.compile change
neither the penalties nor the engine's training steps beyond bf16 rounding; processes claim distinct
GPUs through the lock, or share the only one as the engine intends.

Tolerances, and why:
- fp32 against fp32 (a penalty under autocast and outside it, contiguous against channels-last
  weights): the same fp32 arithmetic, summed in another order at most, so values agree to 1e-5
  relative and gradients to 1e-5 of each tensor's largest entry. Gradients in bf16 would be off by 3e-3
  to 4e-2 of their largest entry (measured with a backward inside the autocast region, before the
  Gram penalties' backward disabled autocast).
- bf16 training steps (contiguous against channels-last against compiled): the forward pass rounds
  to bf16 (8 mantissa bits, ~4e-3 per operation) in different kernels, so losses agree to 2e-2
  relative; the penalty, fp32 on weights that differ only by that noise in two small SGD updates, to
  1e-3; the weights after three steps at lr 0.01 to 2e-3 absolute (a CPU run: 2e-4).
"""

import copy
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from orthoreg.data import dataset_info
from orthoreg.devices import LOCK_DIR_ENV
from orthoreg.models import build_model
from orthoreg.precision import autocast_factory
from orthoreg.regularizers import (
    OrthogonalityRegularizer,
    available_regularizers,
    model_penalty,
    regularized_layers,
)
from orthoreg.runs import build_classifier
from orthoreg.train import make_train_step

ROOT = Path(__file__).resolve().parents[1]
PENALTIES = [name for name in available_regularizers() if name != "none"]
FP32_VALUE = {"rtol": 1e-5, "atol": 0.0}
FP32_GRADIENT = 1e-5  # of each gradient's largest entry
BF16_LOSS = {"rtol": 2e-2, "atol": 1e-3}
BF16_PENALTY = {"rtol": 1e-3, "atol": 1e-7}
BF16_WEIGHTS = {"rtol": 0.0, "atol": 2e-3}

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; torch sees none"),
]


def value_and_gradients(name: str, net: torch.nn.Module, *, autocast: bool) -> list[torch.Tensor]:
    """The penalty, evaluated under bf16 autocast or not, and its gradient with respect to each
    regularised weight, taken after the autocast region (as the engine and PyTorch's AMP recipe do)."""
    weights = [layer.weight for layer in regularized_layers(net)]
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        value = model_penalty(name, net)
    return [value.detach(), *torch.autograd.grad(value, weights)]


def assert_gradients_close(actual: Sequence[torch.Tensor], expected: Sequence[torch.Tensor]) -> None:
    """Each gradient within FP32_GRADIENT of the largest entry of the expected one."""
    for index, (a, b) in enumerate(zip(actual, expected, strict=True)):
        assert a.dtype == b.dtype == torch.float32
        error, scale = float((a - b).abs().max()), float(b.abs().max())
        assert error <= FP32_GRADIENT * scale, (
            f"gradient {index}: off by {error:.3g}, largest entry {scale:.3g}"
        )


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    """WRN-16-8: 3x3 layers with more inputs than filters and 1x1 shortcuts with fewer."""
    torch.manual_seed(0)
    return build_model("wrn16_8", num_classes=10).cuda()


@pytest.mark.parametrize("name", PENALTIES)
def test_penalty_runs_in_fp32_under_bf16_autocast(net, name):
    outside = value_and_gradients(name, net, autocast=False)
    inside = value_and_gradients(name, net, autocast=True)
    assert all(tensor.dtype == torch.float32 for tensor in inside)
    torch.testing.assert_close(inside[0], outside[0], **FP32_VALUE)
    assert_gradients_close(inside[1:], outside[1:])


@pytest.mark.parametrize("name", PENALTIES)
def test_penalty_gradient_stays_fp32_when_backward_runs_inside_autocast(net, name):
    weights = [layer.weight for layer in regularized_layers(net)]
    outside = torch.autograd.grad(model_penalty(name, net), weights)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        inside = torch.autograd.grad(model_penalty(name, net), weights)
    assert_gradients_close(inside, outside)


@pytest.mark.parametrize("name", PENALTIES)
def test_channels_last_weights_give_the_same_penalty(net, name):
    channels_last = copy.deepcopy(net).to(memory_format=torch.channels_last)
    contiguous = value_and_gradients(name, net, autocast=False)
    permuted = value_and_gradients(name, channels_last, autocast=False)
    torch.testing.assert_close(permuted[0], contiguous[0], **FP32_VALUE)
    assert_gradients_close(permuted[1:], contiguous[1:])


def engine_steps(memory_format: torch.memory_format, compiled: bool, steps: int = 3) -> tuple:
    """(loss, ce, penalty) of each of `steps` engine steps from one seeded start on the same batches, and
    the weights after them: ResNet-8 with dn_relaxed, bf16 autocast, SGD Nesterov at lr 0.01."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_classifier("resnet8", dataset_info("cifar10")).to(
        device=device, memory_format=memory_format
    )
    regularizer = OrthogonalityRegularizer(model[1], "dn_relaxed", 1e-2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    forward = torch.compile(model, dynamic=False) if compiled else model
    step = make_train_step(
        forward, regularizer, optimizer, autocast_factory(torch.bfloat16, device), memory_format
    )
    generator = torch.Generator().manual_seed(1)
    values = []
    for _ in range(steps):
        x = torch.rand(64, 3, 32, 32, generator=generator).to(device)
        y = torch.randint(10, (64,), generator=generator).to(device)
        loss, ce, reg, _ = step(x, y, 0.0)
        values.append(torch.stack([loss, ce, reg]).float().cpu())
    weights = {name: parameter.detach().float().cpu() for name, parameter in model.named_parameters()}
    return torch.stack(values), weights


@pytest.fixture(scope="module")
def contiguous_steps() -> tuple:
    return engine_steps(torch.contiguous_format, compiled=False)


@pytest.mark.parametrize("compiled", [False, True], ids=["channels_last", "channels_last_compiled"])
def test_channels_last_and_compile_give_the_same_training_steps(contiguous_steps, compiled):
    reference_values, reference_weights = contiguous_steps
    values, weights = engine_steps(torch.channels_last, compiled)
    torch.testing.assert_close(values[:, :2], reference_values[:, :2], **BF16_LOSS)
    torch.testing.assert_close(values[:, 2], reference_values[:, 2], **BF16_PENALTY)
    torch.testing.assert_close(weights, reference_weights, **BF16_WEIGHTS)


# ---------------------------------------------------------------- the GPU lock, across processes

CLAIM = (
    "import sys\nfrom orthoreg.devices import claim_gpu\n"
    "print(claim_gpu(int(sys.argv[1])), flush=True)\nsys.stdin.read()\n"
)
RESOLVE = (
    "import sys\nfrom orthoreg.devices import resolve_device\n"
    "print(resolve_device('cuda'), flush=True)\nsys.stdin.read()\n"
)


def child(code: str, lock_dir: Path, *args: str) -> subprocess.Popen:
    """A process running `code` with this checkout's src/ importable and its GPU locks in `lock_dir`;
    it holds what it claimed until its stdin closes."""
    paths = [str(ROOT / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), LOCK_DIR_ENV: str(lock_dir)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def first_line(process: subprocess.Popen) -> str:
    line = process.stdout.readline().strip()
    if not line:
        _, stderr = process.communicate(input="", timeout=60)
        pytest.fail(f"the child printed nothing (exit {process.returncode}): {stderr[-2000:]}")
    return line


def release(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def test_each_process_claims_its_own_gpu_until_none_is_left(tmp_path):
    count = torch.cuda.device_count()
    holders = [child(CLAIM, tmp_path, str(count)) for _ in range(count)]
    try:
        assert sorted(int(first_line(holder)) for holder in holders) == list(range(count))
        extra = child(CLAIM, tmp_path, str(count))
        _, stderr = extra.communicate(input="", timeout=120)
        assert extra.returncode != 0 and f"all {count} GPUs are claimed" in stderr
    finally:
        release(holders)


def test_two_processes_resolving_cuda_get_distinct_gpus_when_several_are_shared(tmp_path):
    """With several visible GPUs (CUDA_VISIBLE_DEVICES set or not) each process claims its own;
    with one, both use it (how many run at once is Snakemake's --resources gpu=N)."""
    shared = torch.cuda.device_count() > 1
    holders = [child(RESOLVE, tmp_path) for _ in range(2)]
    try:
        devices = [first_line(holder) for holder in holders]
    finally:
        release(holders)
    if shared:
        assert len(set(devices)) == 2, devices
    else:
        assert devices == ["cuda:0", "cuda:0"]
