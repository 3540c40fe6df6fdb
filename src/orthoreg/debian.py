"""Installing a Debian package, and only where the user allows it: as root, or through sudo when
ORTHOREG_ALLOW_SUDO=1 and sudo asks no password. The datasets (Fashion-MNIST's package) and the
storage providers (rsync) install what they lack through `install_package`, which announces the
command first and says in one line why it installed nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

SUDO_VARIABLE = "ORTHOREG_ALLOW_SUDO"
# apt-get gives up at once when another apt or dpkg holds its lock (a second orthoreg job preparing
# data, a test worker, an unattended upgrade): wait for the lock instead, up to ten minutes
WAIT_FOR_LOCK = ("-o", "DPkg::Lock::Timeout=600")


def apt_access() -> tuple[list[str] | None, str]:
    """How orthoreg may run apt-get, and in words: ([], "as root") as root; (["sudo", "-n"], ...) when
    $ORTHOREG_ALLOW_SUDO is 1 and sudo needs no password; (None, why not) otherwise."""
    if shutil.which("apt-get") is None:
        return None, "there is no apt-get on this machine"
    if os.geteuid() == 0:
        return [], "as root"
    if os.environ.get(SUDO_VARIABLE) != "1":
        return None, f"not root, and sudo is used only when {SUDO_VARIABLE}=1"
    if shutil.which("sudo") is None:
        return None, f"{SUDO_VARIABLE}=1 but there is no sudo"
    probe = subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return None, f"{SUDO_VARIABLE}=1 but sudo asks for a password"
    return ["sudo", "-n"], f"with sudo ({SUDO_VARIABLE}=1)"


def install_package(
    package: str, present: Callable[[], bool], missing: str, announce: Callable[[str], None]
) -> str | None:
    """Install Debian's `package` where allowed, refreshing the package lists once if the first try
    fails and reinstalling it when apt thinks it installed but `present()` is false (its files were
    deleted or moved), each call waiting for apt's lock rather than failing on it; None when
    `present()` holds afterwards, else why not (`missing` names what is still missing)."""
    prefix, how = apt_access()
    if prefix is None:
        announce(f"not installing Debian's package {package}: {how}")
        return how
    install = [*prefix, "apt-get", "install", *WAIT_FOR_LOCK, "-y", "-q", package]
    announce(f"installing Debian's package {package} {how}: {' '.join(install)}")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def run(command: list[str]) -> int:
        return subprocess.run(command, stdout=sys.stderr, env=environment, check=False).returncode

    last = install
    status = run(install)
    if status != 0:  # package lists too old to know the package: refresh them once
        run([*prefix, "apt-get", "update", *WAIT_FOR_LOCK, "-q"])
        status = run(install)
    if status == 0 and not present():
        last = [*prefix, "apt-get", "install", *WAIT_FOR_LOCK, "--reinstall", "-y", "-q", package]
        status = run(last)
    if status != 0:
        return f"`{' '.join(last)}` failed (exit status {status})"
    if not present():
        return f"`{' '.join(last)}` succeeded but {missing}"
    return None
