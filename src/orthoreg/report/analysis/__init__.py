"""The report's analysis layer: run records in; data frames, statistics and verdicts out.

Nothing here draws or writes text for a reader (no matplotlib, no number formatting): the tables and
figures above this layer do that, and they import from here, never from each other. Every frame is
computed from the files a run records (run.json, history.csv, eval.json, layers.csv, spectra.csv,
robustness.json); model.pt is read only by the cosine-Gram heatmaps (`gram.py`).
"""
