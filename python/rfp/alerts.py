"""Warnings that a fit is not usable as it stands.

Each is a ``UserWarning`` subclass, so ``warnings.filterwarnings`` can target
one kind; the R package raises each as an R warning of class
``rfp_<name>_warning`` (e.g. ``rfp_not_converged_warning``).
"""


class RFPWarning(UserWarning):
    """Base class of rfp's warnings about a fit."""


class NotConvergedWarning(RFPWarning):
    """The best held-out loss came at the last step: training had not finished."""


class StoppedAtOnceWarning(RFPWarning):
    """The best held-out loss came at the first evaluation: the model kept is
    close to its random start."""


class NoBetterThanMeanWarning(RFPWarning):
    """The held-out loss is no better than predicting the training mean."""


class DivergenceWarning(RFPWarning):
    """The objective rose far above its starting value (it may stay finite)."""
