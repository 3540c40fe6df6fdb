"""The report's orders: model names parsed onto the paper's depth/width axis, and the fixed orders
of models and regularisers every table and figure shares."""

import pandas as pd

from orthoreg.report.analysis.order import model_key, sort_frame


def test_model_axis_parsing_and_order():
    assert model_key("resnet110").family == "cifar_resnet"
    assert model_key("resnet18").family == "resnet"
    assert model_key("wrn28_10") == model_key("wrn-28-10") == model_key("wide_resnet28_10")
    frame = pd.DataFrame(
        {
            "model": ["wrn28_10", "resnet18", "resnet110", "resnet20", "wrn16_8"],
            "regularizer": ["dn_relaxed", "none", "fro", "dn_strict", "none"],
        }
    )
    assert list(sort_frame(frame, ["model"])["model"]) == [
        "resnet20",
        "resnet110",
        "resnet18",
        "wrn16_8",
        "wrn28_10",
    ]
    assert list(sort_frame(frame, ["regularizer"])["regularizer"]) == [
        "none",
        "none",
        "fro",
        "dn_strict",
        "dn_relaxed",
    ]
