"""Loading user extensions by module name, so a regulariser, model or dataset written outside the
package is registered before the CLI (or the Snakemake pipeline, which calls the CLI) looks names up.

A plugin is any importable module whose import calls `register_regularizer`, `register_model` or
`register_dataset`. List plugins in the environment variable ORTHOREG_PLUGINS, comma-separated.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

PLUGINS_VARIABLE = "ORTHOREG_PLUGINS"


def plugin_names(value: str | None = None) -> list[str]:
    """The module names listed in `value` (default: $ORTHOREG_PLUGINS), blanks dropped, order kept."""
    text = os.environ.get(PLUGINS_VARIABLE, "") if value is None else value
    return [name.strip() for name in text.split(",") if name.strip()]


def load_plugins(value: str | None = None) -> list[ModuleType]:
    """Import every plugin module named in `value` (default: $ORTHOREG_PLUGINS); returns the modules.

    A module that cannot be found is a ValueError naming it and the variable, raised before any other
    plugin is imported, so a typo never leaves half the extensions registered.
    """
    names = plugin_names(value)
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a missing parent package of a dotted name, or a bad name
            found = False
        if not found:
            raise ValueError(
                f"{PLUGINS_VARIABLE} names the module {name!r}, which cannot be imported; list importable "
                "module names separated by commas (put their folder on PYTHONPATH)"
            )
    return [importlib.import_module(name) for name in names]
