"""`orthoreg train`: train one model with one regulariser into a run directory (resumes when re-run)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _key_value(text: str) -> tuple[str, Any]:
    """Parse PARAM=VALUE; the value is a number when it reads as one, a bool for true/false."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return key.strip(), lowered == "true"
    for kind in (int, float):
        try:
            return key.strip(), kind(raw)
        except ValueError:
            continue
    return key.strip(), raw


def _regularizer_options() -> dict[str, tuple[Any, list[str]]]:
    """Every option any registered regulariser takes: a default showing its type, and who takes it."""
    from orthoreg.regularizers import available_regularizers, regularizer_options

    options: dict[str, tuple[Any, list[str]]] = {}
    for name in available_regularizers():
        for key, default in regularizer_options(name).items():
            known, users = options.get(key, (None, []))
            options[key] = (default if known is None else known, [*users, name])
    return options


def _add_regularizer_options(group: argparse._ArgumentGroup) -> None:
    """One flag per regulariser option (`--gamma 2`, `--squared`/`--no-squared`, ...), so the pipeline's
    per-regulariser overrides pass straight through; options left out keep the regulariser's default."""
    for key, (default, users) in sorted(_regularizer_options().items()):
        flag, dest = "--" + key.replace("_", "-"), f"reg_{key}"
        described = f"option of {', '.join(users)} (default {default!r})"
        try:
            if isinstance(default, bool):
                group.add_argument(
                    flag, dest=dest, action="store_const", const=True, default=None, help=described
                )
                group.add_argument(f"--no-{flag[2:]}", dest=dest, action="store_const", const=False)
            else:
                kind = type(default) if isinstance(default, (int, float)) else int
                group.add_argument(
                    flag, dest=dest, type=kind, default=None, metavar=key.upper(), help=described
                )
        except argparse.ArgumentError:  # a plugin option named like a recipe flag: use --reg-option
            continue


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from orthoreg.regularizers import SCHEDULES

    parser = subparsers.add_parser(
        "train",
        help="train one (model, dataset, regulariser, seed) run; re-running the command resumes it",
        description="Train a model into --out: model.pt, history.csv, run.json, and checkpoint.pt for "
        "resuming (written every epoch and on SIGTERM/SIGUSR1, after which the command exits with "
        "128 + the signal number). The dataset must be prepared first with `orthoreg prepare-data`.",
    )
    required = parser.add_argument_group("run")
    required.add_argument("--model", required=True, help="registered model name, e.g. resnet20")
    required.add_argument("--dataset", required=True, help="registered dataset name, e.g. cifar10")
    required.add_argument("--regularizer", required=True, help="registered regulariser, e.g. dn_relaxed")
    required.add_argument("--seed", type=int, required=True)
    required.add_argument("--epochs", type=int, required=True)
    required.add_argument("--out", type=Path, required=True, help="run directory")
    required.add_argument("--data-dir", type=Path, default=Path("data"), help="prepared datasets root")
    required.add_argument("--limit-train", type=int, default=None, help="use the first N training images")
    required.add_argument("--limit-test", type=int, default=None, help="use the first N test images")
    required.add_argument(
        "--ablation", type=_key_value, default=None, metavar="PARAM=VALUE", help="ablation label in run.json"
    )

    reg = parser.add_argument_group("regularisation")
    reg.add_argument(
        "--lambda", dest="lam", type=float, default=None, help="penalty coefficient (default 1e-4)"
    )
    reg.add_argument("--schedule", choices=SCHEDULES, default=None, help="lambda schedule (default constant)")
    _add_regularizer_options(reg)
    reg.add_argument(
        "--reg-option",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other option of the regulariser (repeatable)",
    )
    reg.add_argument("--include-linear", action="store_true", help="regularise linear layers too")
    reg.add_argument("--skip-stem", action="store_true", help="leave the first convolution alone")

    recipe = parser.add_argument_group("recipe")
    recipe.add_argument("--lr", type=float, default=None)
    recipe.add_argument("--lr-milestones", type=float, nargs="*", default=None, help="fractions of training")
    recipe.add_argument("--lr-decay", type=float, default=None, help="lr factor at each milestone")
    recipe.add_argument("--momentum", type=float, default=None)
    recipe.add_argument("--no-nesterov", dest="nesterov", action="store_false")
    recipe.add_argument("--weight-decay", type=float, default=None)
    recipe.add_argument("--batch-size", type=int, default=None)
    recipe.add_argument("--no-augment", dest="augment", action="store_false")
    recipe.add_argument(
        "--model-option",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword passed to build_model, e.g. dropout=0.3 (repeatable)",
    )

    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    runtime.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    runtime.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    runtime.add_argument("--compile", action="store_true", help="torch.compile the model")
    runtime.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    runtime.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    """The TrainConfig the arguments describe; options left out keep TrainConfig's defaults."""
    from orthoreg.train import TrainConfig

    reg_options = dict(args.reg_option)
    for key, value in vars(args).items():
        if key.startswith("reg_") and key != "reg_option" and value is not None:
            reg_options[key[len("reg_") :]] = value
    given = {
        "lam": args.lam,
        "schedule": args.schedule,
        "lr": args.lr,
        "lr_milestones": None if args.lr_milestones is None else tuple(args.lr_milestones),
        "lr_decay": args.lr_decay,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "batch_size": args.batch_size,
        "device": args.device,
        "threads": args.threads,
    }
    ablation = None if args.ablation is None else {"param": args.ablation[0], "value": args.ablation[1]}
    return TrainConfig(
        model=args.model,
        dataset=args.dataset,
        regularizer=args.regularizer,
        seed=args.seed,
        epochs=args.epochs,
        reg_options=reg_options,
        include_linear=args.include_linear,
        skip_stem=args.skip_stem,
        nesterov=args.nesterov,
        augment=args.augment,
        limit_train=args.limit_train,
        limit_test=args.limit_test,
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
        model_options=dict(args.model_option),
        ablation=ablation,
        **{key: value for key, value in given.items() if value is not None},
    )


def run(args: argparse.Namespace) -> int:
    from orthoreg.train import TrainingInterrupted, train

    config = config_from_args(args)
    try:
        record = train(config, args.out, args.data_dir, verbose=not args.quiet)
    except TrainingInterrupted as interrupted:
        print(f"train: {interrupted}", flush=True)
        return interrupted.exit_code
    print(
        f"train: {config.model} on {config.dataset} with {config.regularizer}, seed {config.seed}: "
        f"test accuracy {record['test_accuracy']:.4f} after {record['epochs_completed']} epochs -> {args.out}"
    )
    return 0
