"""Robustness of a trained model: common corruptions (the official CIFAR-10-C / CIFAR-100-C files, or
the same corruptions generated in code) and L-inf FGSM/PGD attacks in [0, 1] pixel space."""

from orthoreg.robustness.attacks import (
    AttackSpec,
    available_attacks,
    fgsm,
    get_attack,
    pgd,
    register_attack,
)
from orthoreg.robustness.cifar_c import (
    ARCHIVES,
    BENCHMARK_CORRUPTIONS,
    download_cifar_c,
    install_archive,
    load_official,
    official_folder,
)
from orthoreg.robustness.corruptions import GENERATED_CORRUPTIONS, SEVERITIES, available_corruptions, corrupt
from orthoreg.robustness.suite import (
    RobustnessSettings,
    accuracy,
    adversarial_accuracy,
    attack_plan,
    mean_corruption_accuracy,
    robustness_report,
    run_robustness,
)

__all__ = [
    "ARCHIVES",
    "BENCHMARK_CORRUPTIONS",
    "GENERATED_CORRUPTIONS",
    "SEVERITIES",
    "AttackSpec",
    "RobustnessSettings",
    "accuracy",
    "adversarial_accuracy",
    "attack_plan",
    "available_attacks",
    "available_corruptions",
    "corrupt",
    "download_cifar_c",
    "fgsm",
    "get_attack",
    "install_archive",
    "load_official",
    "mean_corruption_accuracy",
    "official_folder",
    "pgd",
    "register_attack",
    "robustness_report",
    "run_robustness",
]
