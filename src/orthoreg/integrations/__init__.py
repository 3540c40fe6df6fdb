"""Drop-in integrations with training frameworks, one submodule per framework.

Each submodule imports its framework, so it is imported only by name and never by `import orthoreg`
or by this package: the lean install (torch alone) must not need, or pay the import time of, a
framework it does not use.

- `orthoreg.integrations.lightning`: `OrthogonalityCallback`, a PyTorch Lightning callback
  (the `orthoreg[lightning]` extra).

The Hugging Face Trainer and timm's train.py need no module: a few lines in the user's own code do
it, shown in docs/api.md, "Drop-in integrations".
"""
