"""rfp: regularized bi-level gradient descent for clustered data.

float64 is switched on for JAX at import: estimates are compared with
references to many digits (``dtype="float32"`` trains in single precision).

Compiled programs are kept in JAX's persistent compilation cache, so a new
process does not compile the same fit again: ``$RFP_CACHE_DIR``, else
``$XDG_CACHE_HOME/rfp/jax``, else ``~/.cache/rfp/jax``; ``RFP_CACHE_DIR=off``
turns it off (``rfp.core.cache``).
"""
import jax

jax.config.update("jax_enable_x64", True)

from rfp.core import cache as _cache  # noqa: E402

_cache.enable()

from rfp import alerts, simulate  # noqa: E402
from rfp.baselines.balancing.balance import balance  # noqa: E402
from rfp.baselines.fixed_effects import fixed_effects  # noqa: E402
from rfp.compare import compare  # noqa: E402
from rfp.effects.estimators import effect  # noqa: E402
from rfp.effects.heterogeneity import heterogeneity  # noqa: E402
from rfp.persist.read import load  # noqa: E402
from rfp.training.fit import fit, fit_arrays  # noqa: E402
from rfp.training.fitted import FittedModel  # noqa: E402
from rfp.tuning.tune import tune, tune_arrays  # noqa: E402

__all__ = ["fit", "fit_arrays", "tune", "tune_arrays", "alerts", "load", "simulate",
           "FittedModel", "effect", "compare", "balance", "fixed_effects", "heterogeneity"]
__version__ = "0.1.0"
