"""The report's figures: each module registers its figure families (orthoreg.report.registry), drawn
from the analysis layer alone; a figure never reads a table. `style.py` gives every regulariser one
look across all of them, `draw.py` the lines, bands and per-pair figures they share."""

from orthoreg.report.figures import (  # noqa: F401  (register the figure families, in this order)
    accuracy,
    claims,
    orthogonality,
    robustness,
)
