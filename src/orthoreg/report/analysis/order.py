"""Stable orders and readable axes for regularisers and models, so every table and figure agrees.

Model names are parsed into (family, depth, width) instead of matched literally, so `resnet20`,
`resnet_20` and `wrn28_10` / `wrn-28-10` / `wide_resnet28_10` all land on the same depth/width axis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

REFERENCE = "none"
REGULARIZER_ORDER = ("none", "fro", "so", "dso", "mc", "srip", "ocnn", "dn_strict", "dn_relaxed", "dn_welch")

# ImageNet-style ResNets with basic/bottleneck blocks; every other resnet<d> with d = 6n+2 is the CIFAR one
IMAGENET_STYLE_DEPTHS = (18, 34, 50, 101, 152)
FAMILY_ORDER = ("cifar_resnet", "resnet", "wrn", "other")
FAMILY_LABEL = {
    "cifar_resnet": "CIFAR ResNet (depth grows)",
    "resnet": "ResNet-18/34 (depth grows)",
    "wrn": "WideResNet (depth and width grow)",
    "other": "other models",
}

_RESNET = re.compile(r"^(?:cifar[-_]?)?resnet[-_]?(\d+)$", re.IGNORECASE)
_WRN = re.compile(r"^(?:wrn|wide[-_]?resnet)[-_]?(\d+)[-_x](\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class ModelKey:
    """Where a model sits on the paper's depth/width axis."""

    family: str
    depth: int | None
    width: int | None


def model_key(name: str) -> ModelKey:
    """Parse a registered model name into its family, depth and width (None where not applicable)."""
    match = _RESNET.match(name)
    if match:
        depth = int(match.group(1))
        family = "resnet" if depth in IMAGENET_STYLE_DEPTHS else "cifar_resnet"
        return ModelKey(family, depth, None)
    match = _WRN.match(name)
    if match:
        return ModelKey("wrn", int(match.group(1)), int(match.group(2)))
    return ModelKey("other", None, None)


def model_sort_key(name: str) -> tuple:
    key = model_key(name)
    return (FAMILY_ORDER.index(key.family), key.depth or 0, key.width or 0, name)


def regularizer_sort_key(name: str) -> tuple:
    if name in REGULARIZER_ORDER:
        return (REGULARIZER_ORDER.index(name), name)
    return (len(REGULARIZER_ORDER), name)


def ordered(values, kind: str) -> list:
    """Unique values of `kind` ("model" or "regularizer") in the report's order."""
    key = {"model": model_sort_key, "regularizer": regularizer_sort_key}[kind]
    return sorted(set(values), key=key)


def sort_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Sort by the given columns, using the report's model/regulariser orders where they apply."""
    keys = {"model": model_sort_key, "regularizer": regularizer_sort_key}

    def key(series: pd.Series) -> pd.Series:
        if series.name in keys:
            return series.map(lambda value: keys[series.name](str(value)))
        return series

    return frame.sort_values(columns, key=key, kind="stable").reset_index(drop=True)
