"""orthoreg: kernel-orthogonality regularisers for CNNs and the pipeline that replicates the paper.

import orthoreg
reg = orthoreg.OrthogonalityRegularizer(model, "dn_relaxed", lam=1e-3, rho=0.5)
loss = criterion(model(x), y) + reg(progress)
"""

from orthoreg.models import available_models, build_model, register_model
from orthoreg.regularizers import (
    OrthogonalityRegularizer,
    available_regularizers,
    model_penalty,
    penalty,
    register_regularizer,
    regularizer_options,
)

__version__ = "0.3.0"

__all__ = [
    "OrthogonalityRegularizer",
    "__version__",
    "available_models",
    "available_regularizers",
    "build_model",
    "model_penalty",
    "penalty",
    "register_model",
    "register_regularizer",
    "regularizer_options",
]
