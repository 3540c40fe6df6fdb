"""The programs a Snakemake storage provider runs on this machine, there before the first job.

Without a shared file system (`--default-storage-provider fs --shared-fs-usage none`), Snakemake's
`fs` storage provider copies every input and output with rsync, which a bare Debian lacks; the first
job would then fail with a missing-output error that does not say why. The workflow calls
`require_programs` while it is parsed: a missing program is installed from Debian's package the way
the datasets are (`orthoreg.debian`: as root, or with sudo when ORTHOREG_ALLOW_SUDO=1, announced
first), else one line names the remedy. It installs nothing for a provider that runs no
program of its own (s3, gcs, ...), and it does not install the storage plugins: a missing plugin is
Snakemake's own one-line error, `The package snakemake-storage-plugin-<name> is not installed`.
"""

from __future__ import annotations

import shutil
import sys

from orthoreg.debian import install_package

# storage provider -> {program it runs: the Debian package that installs it}
PROGRAMS = {"fs": {"rsync": "rsync"}}


def require_programs(provider: str | None) -> None:
    """Make sure every program `provider` runs is on PATH, installing a missing one with apt-get
    where this user may; RuntimeError naming the program and the remedy where it stays missing."""
    for program, package in PROGRAMS.get(provider or "", {}).items():
        if shutil.which(program) is not None:
            continue
        reason = install_package(
            package,
            lambda name=program: shutil.which(name) is not None,
            f"{program} is still not on PATH",
            announce,
        )
        if reason is not None:
            raise RuntimeError(
                f"the {provider} storage provider copies files with {program}, which is not installed"
                f" ({reason}): install it (`sudo apt-get install {package}` on Debian or Ubuntu) and rerun"
            )


def announce(step: str) -> None:
    print(f"orthoreg: {step}", file=sys.stderr, flush=True)
