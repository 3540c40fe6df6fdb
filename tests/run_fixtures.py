"""Test helpers shared by the evaluate and robustness tests."""

import json

import torch


def write_untrained_run(run_dir, data_dir, dataset="synthetic", model_name="resnet8"):
    """A run directory in the contract's layout (run.json + model.pt) around an untrained network."""
    from orthoreg.data import dataset_info, prepare_dataset
    from orthoreg.runs import build_classifier

    prepare_dataset(dataset, data_dir)
    info = dataset_info(dataset)
    torch.manual_seed(0)
    model = build_classifier(model_name, info)
    run_dir.mkdir(parents=True)
    torch.save(model.state_dict(), run_dir / "model.pt")
    record = {
        "model": model_name,
        "dataset": dataset,
        "regularizer": "none",
        "seed": 0,
        "num_classes": info.num_classes,
        "in_channels": info.in_channels,
        "image_size": info.image_size,
        "mean": list(info.mean),
        "std": list(info.std),
        "config": {"include_linear": False},
        "test_accuracy": 0.1,
    }
    (run_dir / "run.json").write_text(json.dumps(record))
    return model.eval()
