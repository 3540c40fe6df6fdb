"""The GPU check as a package: `benchmarks/gpu_check.py` parses the command line and runs it.

`harness` runs the registered parts (one module each under `parts/`, registered in `harness.PARTS` in
the order they run) under their deadlines and rewrites the JSON after each; `plan` says what they
measure (a GPU's sizes, or a tiny CPU stand-in with --quick); `steps` builds and times the engine's
training step, which most parts share; `targets` holds every target the measurements are held
against; `printing` turns records into the lines the command prints. Nothing here is imported by the
library or the tests: it runs as a script, with `benchmarks/` first on the import path.
"""
