"""`orthoreg robustness`: common corruptions and FGSM/PGD attacks on a finished run."""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

from orthoreg.cli.options import add_device_arguments, add_run_arguments
from orthoreg.robustness import RobustnessSettings, mean_corruption_accuracy, run_robustness

DEFAULT_EPS = ("0", "1/255", "2/255", "4/255", "8/255", "16/255")


def eps_value(text: str) -> float:
    """An attack radius in [0, 1] pixel units, written as a decimal (0.0313) or a fraction (8/255)."""
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError) as error:
        raise argparse.ArgumentTypeError(
            f"expected a number such as 0.0314 or 8/255, got {text!r}"
        ) from error


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "robustness",
        help="common corruptions (official CIFAR-C when present, else generated) and FGSM/PGD attacks",
        description="Evaluate the run in --run under common corruptions and L-inf attacks in [0, 1] pixel "
        "space and write robustness.json beside it. Official CIFAR-10-C/CIFAR-100-C files are used when "
        "--cifar-c-dir holds them (or --download fetches them); otherwise the corruptions are generated in "
        "code with the CIFAR-C severity constants and labelled source=generated.",
    )
    add_run_arguments(parser)
    parser.add_argument("--limit", type=int, default=None, help="use the first N test images (default: all)")
    parser.add_argument(
        "--eps",
        type=eps_value,
        nargs="+",
        default=[eps_value(e) for e in DEFAULT_EPS],
        help="attack radii of the sweep (FGSM and the shortest PGD), decimals or fractions like 8/255",
    )
    parser.add_argument("--pgd-steps", type=int, nargs="+", default=[10, 20], help="PGD step counts")
    parser.add_argument("--step-size", type=eps_value, default=eps_value("2/255"), help="PGD step size")
    parser.add_argument(
        "--reference-eps",
        type=eps_value,
        default=eps_value("8/255"),
        help="radius at which every --pgd-steps count runs (the sweep uses only the shortest)",
    )
    parser.add_argument("--severities", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--corruptions", nargs="+", default=None, help="corruption names (default: all)")
    parser.add_argument(
        "--cifar-c-dir",
        type=Path,
        default=None,
        help="folder holding CIFAR-10-C/ and CIFAR-100-C/ (the extracted Zenodo archives)",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="download and verify the official CIFAR-C archive into --cifar-c-dir when absent",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruption noise and PGD starts")
    parser.add_argument("--batch-size", type=int, default=250)
    add_device_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = RobustnessSettings(
        eps=tuple(args.eps),
        pgd_steps=tuple(args.pgd_steps),
        step_size=args.step_size,
        reference_eps=args.reference_eps,
        severities=tuple(args.severities),
        corruptions=None if args.corruptions is None else tuple(args.corruptions),
        seed=args.seed,
        batch_size=args.batch_size,
    )
    result = run_robustness(
        args.run,
        args.data_dir,
        settings,
        limit=args.limit,
        cifar_c_dir=args.cifar_c_dir,
        download=args.download,
        device=args.device,
        amp=args.amp,
    )
    if args.cifar_c_dir is not None and all(r["source"] == "generated" for r in result["corruptions"]):
        print(
            f"robustness: no official CIFAR-C files for this dataset in {args.cifar_c_dir}; the corruptions "
            "were generated in code (source=generated)"
        )
    print(f"robustness: {args.run}: clean accuracy {result['clean_accuracy']:.4f} on {result['n']} images")
    for source, means in mean_corruption_accuracy(result["corruptions"]).items():
        print(f"robustness: {source} corruptions, mean accuracy {means['all']:.4f}")
    for record in result["adversarial"]:
        name = "FGSM" if record["attack"] == "fgsm" else f"PGD-{record['steps']}"
        print(f"robustness: {name} eps {255 * record['eps']:.3g}/255: accuracy {record['accuracy']:.4f}")
    return 0
