"""Evaluation of a trained run: clean accuracy, top-5, loss, calibration, feature expressiveness and
near-orthogonality, written to the run's eval.json, layers.csv and spectra.csv.

The model is the engine's `Sequential(Normalize, net)` on float images in [0, 1]. One pass gives both
the penultimate features (`net.forward_features` after the normalisation) and the logits
(`net.fc(features)`, which the model contract makes equal to `net(x)`).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from orthoreg.data import evaluation_batches, load_split
from orthoreg.devices import resolve_device
from orthoreg.files import save_csv, save_json
from orthoreg.metrics import cosine_gram, feature_metrics, layer_metrics, singular_values, summarize
from orthoreg.precision import autocast_dtype, autocast_factory, dtype_name
from orthoreg.provenance import provenance
from orthoreg.runs import load_run

ECE_BINS = 15
TOP_K = 5


def expected_calibration_error(
    confidences: torch.Tensor, correct: torch.Tensor, n_bins: int = ECE_BINS
) -> float:
    """ECE (Guo et al., 2017): sum over equal-width confidence bins (i/B, (i+1)/B] of
    |bin| / n * |accuracy(bin) - mean confidence(bin)|; a confidence of 0 falls in the first bin."""
    if confidences.shape != correct.shape or confidences.ndim != 1 or confidences.numel() == 0:
        raise ValueError(
            f"need two equal 1-D non-empty tensors, got {tuple(confidences.shape)} and {tuple(correct.shape)}"
        )
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    confidences = confidences.double()
    if confidences.min() < 0 or confidences.max() > 1:
        raise ValueError("confidences must lie in [0, 1]")
    bins = (torch.ceil(confidences * n_bins).long() - 1).clamp(0, n_bins - 1)
    gap = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, correct.double() - confidences)
    return float(gap.abs().sum() / confidences.numel())


def _parts(model: nn.Module) -> tuple[nn.Module, Any]:
    """(Normalize, net) of the engine's Sequential, checking the net has forward_features and fc."""
    if not (isinstance(model, nn.Sequential) and len(model) == 2):
        raise ValueError(f"expected the engine's Sequential(Normalize, net), got {type(model).__name__}")
    net = model[1]
    if not (hasattr(net, "forward_features") and isinstance(getattr(net, "fc", None), nn.Linear)):
        raise ValueError(f"{type(net).__name__} lacks forward_features or a final nn.Linear named fc")
    return model[0], net


def prediction_metrics(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    amp: str = "off",
) -> dict[str, Any]:
    """test_accuracy, top5_accuracy (None under 5 classes), test_loss, ece, n_test, effective_rank and
    mean_abs_channel_cosine of the penultimate features, on uint8 images (N, C, H, W), and the
    forward_dtype the pass ran in (`amp` as in training: off is fp32)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    normalize, net = _parts(model)
    model.eval()
    device = torch.device(device)
    dtype = autocast_dtype(amp, device)
    autocast = autocast_factory(dtype, device)
    batches = evaluation_batches(images, labels, batch_size, device)
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, top-1 correct, top-k correct
    confidences, correct, features = [], [], []
    with torch.no_grad():
        for x, y in batches:
            with autocast():
                feature = net.forward_features(normalize(x))
                logits = net.fc(feature)
            logits = logits.float()
            k = min(TOP_K, logits.shape[1])
            hits = (logits.topk(k, dim=1).indices == y[:, None]).any(1)
            probabilities = logits.softmax(1)
            confidence, predicted = probabilities.max(1)
            top1 = predicted == y
            sums += torch.stack(
                [
                    F.cross_entropy(logits, y, reduction="sum").double(),
                    top1.sum().double(),
                    hits.sum().double(),
                ]
            )
            confidences.append(confidence.cpu())
            correct.append(top1.cpu())
            features.append(feature.float().cpu())
    n = images.shape[0]
    loss, top1_total, topk_total = sums.tolist()
    if not math.isfinite(loss):
        raise ValueError(f"the test loss is {loss}: the model's weights or outputs are not finite")
    expressiveness = feature_metrics(torch.cat(features))
    return {
        "test_accuracy": top1_total / n,
        "top5_accuracy": topk_total / n if logits.shape[1] >= TOP_K else None,
        "test_loss": loss / n,
        "ece": expected_calibration_error(torch.cat(confidences), torch.cat(correct)),
        "n_test": n,
        "effective_rank": float(expressiveness["effective_rank"]),
        "mean_abs_channel_cosine": float(expressiveness["mean_abs_channel_cosine"]),
        "forward_dtype": dtype_name(dtype),
    }


def evaluate_model(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    include_linear: bool = False,
) -> dict[str, Any]:
    """The eval.json of a model: prediction_metrics plus `orthogonality`, the summary of its layers'
    near-orthogonality (orthoreg.metrics.summarize)."""
    _, net = _parts(model)
    result = prediction_metrics(model, images, labels, batch_size=batch_size, device=device)
    return {**result, "orthogonality": summarize(layer_metrics(net, include_linear=include_linear))}


def spectrum_rows(net: nn.Module, layer_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """spectra.csv rows: the singular values of W for every layer listed in layers.csv."""
    rows = []
    for layer in layer_rows:
        module: Any = net.get_submodule(layer["layer"])
        weight = module.weight.detach()
        for index, value in enumerate(singular_values(weight, layer["groups"]).tolist()):
            rows.append({"layer": layer["layer"], "index": index, "singular_value": value})
    return rows


GRAM_COLUMNS = ["layer", "row", "column", "cosine"]


def gram_rows(net: nn.Module, layer_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """gram.csv rows: the cosines between the filters of the last 3x3 convolution in layers.csv
    (the report's heatmap), one row per pair (row < column), so the figure needs no model.pt."""
    square = [row for row in layer_rows if row["kind"] == "conv" and (row.get("kh"), row.get("kw")) == (3, 3)]
    if not square:
        return []
    layer = square[-1]
    module: Any = net.get_submodule(layer["layer"])
    cosines = cosine_gram(module.weight.detach(), groups=layer["groups"])
    rows, columns = torch.triu_indices(len(cosines), len(cosines), offset=1)
    return [
        {"layer": layer["layer"], "row": int(r), "column": int(c), "cosine": float(cosines[r, c])}
        for r, c in zip(rows.tolist(), columns.tolist())
    ]


def evaluate_run(
    run_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] = "data",
    *,
    limit_test: int | None = None,
    batch_size: int = 500,
    device: str = "auto",
    amp: str = "off",
) -> dict[str, Any]:
    """Evaluate the run in run_dir on its dataset's test split and write eval.json, layers.csv and
    spectra.csv there atomically; returns the eval.json content."""
    if limit_test is not None and limit_test < 1:
        raise ValueError(f"limit_test must be >= 1 or None (all test images), got {limit_test}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    started = (time.monotonic(), time.process_time())
    torch_device = resolve_device(device)
    model, record = load_run(run_dir, torch_device)
    model = model.to(memory_format=torch.channels_last)
    _, net = _parts(model)
    images, labels = load_split(record["dataset"], Path(data_dir), "test", limit=limit_test)
    layers = layer_metrics(net, include_linear=bool(record["config"].get("include_linear", False)))
    result = {
        **prediction_metrics(model, images, labels, batch_size=batch_size, device=torch_device, amp=amp),
        "orthogonality": summarize(layers),
        "settings": {"limit_test": limit_test, "batch_size": batch_size, "amp": amp},
    }
    result["provenance"] = provenance(
        torch_device, time.monotonic() - started[0], time.process_time() - started[1]
    )
    run_dir = Path(run_dir)
    save_csv(layers, list(layers[0]) if layers else ["layer"], run_dir / "layers.csv")
    save_csv(spectrum_rows(net, layers), ["layer", "index", "singular_value"], run_dir / "spectra.csv")
    save_csv(gram_rows(net, layers), GRAM_COLUMNS, run_dir / "gram.csv")
    save_json(result, run_dir / "eval.json")
    return result
