"""Near-orthogonality of any model's layers: a registered model, a torchvision model, a finished run,
or a bare state dict.

A bare state dict (for example `torch.save(torchvision.models.resnet18().state_dict(), path)`) is read
without its model class: every 3-, 4- or 5-D tensor named `*weight` becomes a Conv1d/2d/3d and every
2-D one a `Linear`, placed at the same dotted name, so `orthoreg.metrics.layer_metrics` measures them
and the layer names match the original model's. A state dict records neither strides nor groups, so
its rows have `stride` None, grouped convolutions are read as dense ones, and the convolution-operator
spectrum (which depends on the stride) is refused for it; `torchvision:<name>` builds the real model
(without weights) instead. For a run trained with dn_relaxed, each layer's rank* and k are those the
run recorded; `rho` adds the k of the rho rule for any other target.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from orthoreg.files import atomic_write, load_torch, save_csv
from orthoreg.metrics import layer_metrics, singular_values
from orthoreg.models import available_models, build_model
from orthoreg.regularizers import relaxation_k
from orthoreg.runs import load_run

# Nested mappings that hold the weights in common checkpoint layouts (orthoreg's checkpoint.pt: "model").
NESTED_STATE_KEYS = ("model", "state_dict", "model_state_dict")
FIGURE_SUFFIXES = (".pdf", ".png")


@dataclass
class Inspection:
    """What `inspect_target` measured: where the weights came from, one row per layer, and spectra."""

    source: str
    rows: list[dict[str, Any]]
    spectra: dict[str, torch.Tensor] = field(default_factory=dict)
    strides_known: bool = True


def _state_dict_of(content: Any, path: Path) -> Mapping[str, torch.Tensor]:
    """The tensor mapping inside a loaded file, looking one level into common checkpoint layouts."""
    if isinstance(content, Mapping):
        for key in NESTED_STATE_KEYS:
            if isinstance(content.get(key), Mapping):
                return _state_dict_of(content[key], path)
        if any(isinstance(value, torch.Tensor) for value in content.values()):
            return {key: value for key, value in content.items() if isinstance(value, torch.Tensor)}
    raise ValueError(
        f"{path} holds a {type(content).__name__}, not a state dict: expected a file written by "
        "torch.save(model.state_dict(), path), a run's model.pt or checkpoint.pt"
    )


CONVOLUTION_OF_RANK = {3: nn.Conv1d, 4: nn.Conv2d, 5: nn.Conv3d}


def _weight_layer(weight: torch.Tensor) -> nn.Module:
    """A bias-free Conv1d/2d/3d (3-5-D weight) or Linear (2-D weight) holding `weight` as it is
    (metrics read it in float64, so nothing is lost to a conversion here)."""
    weight = weight.detach()
    if weight.ndim in CONVOLUTION_OF_RANK:
        out_channels, in_channels, *kernel = weight.shape
        convolution = CONVOLUTION_OF_RANK[weight.ndim]
        layer: nn.Module = nn.utils.skip_init(
            convolution, in_channels, out_channels, tuple(kernel), bias=False
        )
    else:
        layer = nn.utils.skip_init(nn.Linear, weight.shape[1], weight.shape[0], bias=False)
    layer.weight = nn.Parameter(weight, requires_grad=False)
    return layer


def module_from_state_dict(state: Mapping[str, torch.Tensor], *, include_linear: bool = False) -> nn.Module:
    """A module tree holding the state dict's conv (and, with include_linear, linear) weights under their
    original dotted names; everything else (norms, biases, buffers) is left out as metrics ignore it."""
    root = nn.Module()
    wanted = (*CONVOLUTION_OF_RANK, 2) if include_linear else tuple(CONVOLUTION_OF_RANK)
    for key, tensor in state.items():
        parts = key.split(".")
        if parts[-1] != "weight" or tensor.ndim not in wanted or len(parts) < 2:
            continue
        if not tensor.is_floating_point():
            raise ValueError(f"the weight {key!r} has dtype {tensor.dtype}; expected a floating-point tensor")
        parent = root
        for name in parts[:-2]:
            child = parent._modules.get(name)
            if child is None:
                child = nn.Module()
                parent.add_module(name, child)
            parent = child
        layer = _weight_layer(tensor)
        existing = parent._modules.get(parts[-2])
        if existing is not None:  # a container created earlier for a deeper key keeps its children
            for child_name, child in existing.named_children():
                layer.add_module(child_name, child)
        parent.add_module(parts[-2], layer)
    if not any(isinstance(module, tuple(CONVOLUTION_OF_RANK.values())) for module in root.modules()):
        raise ValueError(
            "no convolution weights (3- to 5-D tensors named '*.weight') found; inspect needs a CNN's state dict"
        )
    return root


@dataclass
class Target:
    """The module to measure, a description of where it came from, and whether its strides are real."""

    module: nn.Module
    source: str
    strides_known: bool
    relaxation: Mapping[str, Any] | None = None  # a dn_relaxed run's recorded rule and per-layer k


def _load_file(path: Path, include_linear: bool) -> Target:
    if path.name == "model.pt" and (path.parent / "run.json").is_file():
        return _load_run_dir(path.parent)
    try:
        content = load_torch(path)
    except ValueError as error:
        raise ValueError(
            f"{path} is not a PyTorch checkpoint that torch.load(weights_only=True) can read; expected a "
            "file written by torch.save(model.state_dict(), path), a run's model.pt or checkpoint.pt"
        ) from error
    state = _state_dict_of(content, path)
    return Target(module_from_state_dict(state, include_linear=include_linear), f"state dict {path}", False)


def _load_run_dir(run_dir: Path) -> Target:
    model, record = load_run(run_dir, "cpu")
    details = ", ".join(str(record[key]) for key in ("model", "regularizer", "seed") if key in record)
    source = f"run {run_dir} ({details})"
    net = cast(nn.Sequential, model)[1]  # Sequential(Normalize, net): measure the net, as evaluate does
    return Target(net, source, True, record.get("relaxation"))


def _torchvision_model(name: str, num_classes: int) -> Target:
    """torchvision's `name`, built without weights (nothing is downloaded)."""
    try:
        from torchvision import models  # an optional dependency: only this kind of target needs it
    except ModuleNotFoundError as error:
        raise ValueError(f"torchvision:{name} needs torchvision: pip install torchvision") from error
    if name not in models.list_models():
        raise ValueError(f"torchvision has no model {name!r}; see torchvision.models.list_models()")
    model = models.get_model(name, weights=None, num_classes=num_classes)
    return Target(model, f"torchvision model {name} (no weights, {num_classes} classes)", True)


def load_target(
    target: str | os.PathLike[str],
    *,
    include_linear: bool = False,
    num_classes: int = 10,
    in_channels: int = 3,
) -> Target:
    """The module to measure for a run directory, a weights file or a registered model name.

    A run (a directory with run.json, or its model.pt) is rebuilt with `orthoreg.runs.load_run` and its
    network measured, as `orthoreg evaluate` does; any other file is read as a bare state dict;
    `torchvision:<name>` is torchvision's model without weights; a name that is no path is built,
    freshly initialised, with `orthoreg.models.build_model`.
    """
    if str(target).startswith("torchvision:"):
        return _torchvision_model(str(target).split(":", 1)[1], num_classes)
    path = Path(target)
    if path.is_dir():
        if not (path / "run.json").is_file():
            raise FileNotFoundError(f"{path} is a directory without run.json: not a run directory")
        return _load_run_dir(path)
    if path.is_file():
        return _load_file(path, include_linear)
    name = str(target)
    if name in available_models():
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes} and {in_channels}")
        model = build_model(name, num_classes, in_channels=in_channels)
        source = f"model {name} (freshly initialised, {num_classes} classes, {in_channels} channels)"
        return Target(model, source, True)
    raise FileNotFoundError(
        f"{name!r} is neither an existing file or run directory nor a registered model; "
        f"registered models: {', '.join(available_models())}"
    )


def _layer_spectrum(module: nn.Module, layer: str, groups: int) -> torch.Tensor:
    weight = cast(torch.Tensor, module.get_submodule(layer).weight)
    return singular_values(weight.detach(), groups).cpu()


def relaxation_columns(
    row: Mapping[str, Any], recorded: Mapping[str, Any] | None, rho: float | None
) -> dict[str, Any]:
    """rank* and k of a layer: those a dn_relaxed run recorded, or the rho rule's k for its shape."""
    if recorded is not None and row["layer"] in recorded.get("layers", {}):
        layer = recorded["layers"][row["layer"]]
        return {"rank": layer.get("rank"), "k": layer.get("k")}
    if rho is not None:
        return {"k": relaxation_k(row["o"] // row["groups"], row["n"], rho)}
    return {}


def inspect_target(
    target: str | os.PathLike[str],
    *,
    include_linear: bool = False,
    conv_input_size: tuple[int, int] | None = None,
    num_classes: int = 10,
    in_channels: int = 3,
    rho: float | None = None,
) -> Inspection:
    """Per-layer near-orthogonality (the rows of `orthoreg.metrics.layer_metrics`) and the singular
    values of every measured layer's W, for whatever `load_target` accepts; with dn_relaxed's rank* and
    k where the run recorded them, or (given `rho`) the rho rule's k."""
    if rho is not None and not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho!r}")
    if conv_input_size is not None and (len(conv_input_size) != 2 or min(conv_input_size) < 1):
        raise ValueError(f"conv_input_size must be two positive integers (H, W), got {conv_input_size}")
    loaded = load_target(
        target, include_linear=include_linear, num_classes=num_classes, in_channels=in_channels
    )
    if conv_input_size is not None and not loaded.strides_known:
        raise ValueError(
            f"{loaded.source} does not record the convolutions' strides, which the operator spectrum "
            "depends on; --conv-input-size needs a registered model name or a run directory"
        )
    with torch.no_grad():
        rows = layer_metrics(loaded.module, include_linear=include_linear, conv_input_size=conv_input_size)
        spectra = {row["layer"]: _layer_spectrum(loaded.module, row["layer"], row["groups"]) for row in rows}
    rows = [{**row, **relaxation_columns(row, loaded.relaxation, rho)} for row in rows]
    if not loaded.strides_known:
        rows = [{**row, "stride": None} for row in rows]
    return Inspection(loaded.source, rows, spectra, loaded.strides_known)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A fixed-width text table of the rows, numbers to four significant digits; columns that are
    None in every row (e.g. the operator spectrum when no input size was given) are left out."""
    if not rows:
        return "(no layers)"
    columns = [c for c in rows[0] if any(row[c] is not None for row in rows)]
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(line, widths, strict=True)))
        for line in cells
    ]
    return "\n".join(lines)


def write_table(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """The rows as CSV (every layer_metrics column), written atomically."""
    if not rows:
        raise ValueError("no layer rows to write")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_csv(rows, list(rows[0]), path)


def figure_format(path: str | os.PathLike[str]) -> str:
    """'pdf' or 'png' from the path's suffix; anything else is refused."""
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise ValueError(f"figure path {path} must end in one of {', '.join(FIGURE_SUFFIXES)}")
    return suffix.lstrip(".")


def write_spectrum_figure(spectra: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Singular values of every layer's W, sorted, against their relative index (0 = largest): an
    orthogonal layer is a flat line at 1. Written atomically as PDF or PNG by the path's suffix."""
    path = Path(path)
    file_format = figure_format(path)
    if not spectra:
        raise ValueError("no spectra to draw")
    # matplotlib is an optional extra (orthoreg[report]); only this figure needs it
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0, 3.4), layout="constrained")
    axis = figure.add_subplot()
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, len(spectra)))
    for colour, (layer, values) in zip(colours, spectra.items(), strict=True):
        ordered = np.sort(np.asarray(values, dtype=float))[::-1]
        position = np.linspace(0.0, 1.0, len(ordered)) if len(ordered) > 1 else np.zeros(1)
        axis.plot(position, ordered, color=colour, linewidth=0.9, label=layer)
    axis.axhline(1.0, color="0.3", linewidth=0.8, linestyle="--")
    axis.set_yscale("log")
    axis.set_xlabel("singular value index / (count - 1)")
    axis.set_ylabel("singular value of W")
    axis.set_title(f"{len(spectra)} layers (dark = first)")
    if len(spectra) <= 12:
        axis.legend(fontsize=6, frameon=False)
    atomic_write(path, lambda temporary: figure.savefig(temporary, format=file_format, dpi=200))
