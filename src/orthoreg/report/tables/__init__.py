"""The report's tables: each module registers its tables (orthoreg.report.registry), built from the
analysis layer alone; a table never reads a figure or another table. Imported in the order the tables
are listed in index.md and the README."""

from orthoreg.report.tables import (  # noqa: F401  (register the tables, in this order)
    accuracy,
    claims,
    missing,
    orthogonality,
    published,
    robustness,
)
