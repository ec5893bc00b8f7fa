"""rfp: regularized bi-level gradient descent for clustered data.

float64 is switched on for JAX at import: estimates are compared with
references to many digits.
"""
import jax

jax.config.update("jax_enable_x64", True)

from .api import FittedModel, fit, fit_arrays  # noqa: E402
from .persist import load  # noqa: E402
from . import simulate  # noqa: E402
from .effects import effect  # noqa: E402
from .compare import balance, compare  # noqa: E402
from .heterogeneity import heterogeneity  # noqa: E402

__all__ = ["fit", "fit_arrays", "load", "simulate", "FittedModel", "effect", "compare", "balance",
           "heterogeneity"]
__version__ = "0.1.0"
