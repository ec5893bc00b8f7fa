"""scikit-learn estimators around ``rfp.fit_arrays``: ``RFPRegressor``
(squared loss) and ``RFPClassifier`` (logistic loss, binary 0/1 target), so
the method can sit in pipelines, ``clone``, grid searches and serve as a
DoubleML learner.

Where the cluster comes from. The method needs the cluster of every training
row (its inner adaptation steps are per cluster). In order:

1. ``fit(X, y, groups=cluster)``, scikit-learn's name for row groups;
2. else ``cluster_column``: the index of a column of X that holds the cluster
   code. It is taken out of X before fitting and predicting (it is never a
   feature). This is the route for DoubleML, which calls
   ``learner.fit(X, y)`` without groups: put a numeric copy of the cluster
   id among DoubleML's ``x_cols`` and set ``cluster_column`` to its index;
3. else a ``ValueError`` saying so. There is no silent fallback: one row per
   cluster would turn the per-cluster adaptation into a per-row one, a
   different method.

Prediction uses theta alone (never the cluster), as ``FittedModel.predict``.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from rfp.training.fit import fit_arrays


class _RFPBase(BaseEstimator):
    _loss = "squared"

    def __init__(self, model="mlp", hidden=(32, 32), activation="tanh", alpha=0.5,
                 inner_steps=1, inner_lr=0.1, penalty=0.0, learning_rate=1e-2, max_steps=2000,
                 patience=200, validation_share=0.2, equal_clusters=False, seed=0,
                 cluster_column=None, progress=False):
        self.model = model
        self.hidden = hidden
        self.activation = activation
        self.alpha = alpha
        self.inner_steps = inner_steps
        self.inner_lr = inner_lr
        self.penalty = penalty
        self.learning_rate = learning_rate
        self.max_steps = max_steps
        self.patience = patience
        self.validation_share = validation_share
        self.equal_clusters = equal_clusters
        self.seed = seed
        self.cluster_column = cluster_column
        self.progress = progress

    def _split(self, X, groups=None):
        """(features, cluster or None) from X and groups (module docstring)."""
        x = np.asarray(X, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
        if self.cluster_column is None:
            return x, groups
        j = int(self.cluster_column)
        if not -x.shape[1] <= j < x.shape[1]:
            raise ValueError(f"cluster_column={self.cluster_column} is not a column of X, which "
                             f"has {x.shape[1]} column(s)")
        features = np.delete(x, j, axis=1)
        if features.shape[1] == 0:
            raise ValueError("X holds only the cluster column: there are no features")
        return features, (x[:, j] if groups is None else groups)

    def _fit(self, X, y, groups, sample_weight=None, y_numeric=True):
        # scikit-learn's own checks of X and y: dense, 2-d, at least 2 rows; missing
        # values are left to rfp's check, which names the column and row
        X, y = validate_data(self, X, y, accept_sparse=False, ensure_min_samples=2,
                             y_numeric=y_numeric, ensure_all_finite=False)
        x, cluster = self._split(X, groups)
        if cluster is None:
            raise ValueError(
                f"{type(self).__name__} needs the cluster of every row: call fit(X, y, "
                f"groups=cluster), or set cluster_column=<index of the cluster column in X> "
                f"(DoubleML passes no groups; see rfp.sklearn)")
        cluster = np.asarray(cluster).reshape(-1)
        if len(cluster) != len(y):
            raise ValueError(f"groups must give one cluster per row of X ({len(y)}), got "
                             f"{len(cluster)}")
        self.model_ = fit_arrays(
            x, np.asarray(y, dtype=float).reshape(-1), cluster, model=self.model,
            progress=self.progress, hidden=tuple(self.hidden), activation=self.activation,
            alpha=self.alpha, inner_steps=self.inner_steps, inner_lr=self.inner_lr,
            penalty=self.penalty, learning_rate=self.learning_rate, max_steps=self.max_steps,
            patience=self.patience, validation_share=self.validation_share,
            equal_clusters=self.equal_clusters, seed=self.seed, loss=self._loss,
            weights=None if sample_weight is None else
            np.asarray(sample_weight, dtype=float).reshape(-1))
        return self

    def _response(self, X):
        check_is_fitted(self, "model_")
        have = np.asarray(X) if not hasattr(X, "shape") else X
        if getattr(have, "ndim", 2) == 2 and have.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {have.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input: X has {have.shape[1]} column(s); the "
                f"model was fitted on {self.n_features_in_}"
                + (" (the cluster column included)" if self.cluster_column is not None else "")
                + "; pass the same columns as in fit")
        X = validate_data(self, X, accept_sparse=False, reset=False)
        x, _ = self._split(X)
        return self.model_.predict_arrays(x)


class RFPRegressor(RegressorMixin, _RFPBase):
    """The method as a scikit-learn regressor (squared loss).

    Parameters
    ----------
    model, hidden, activation, alpha, inner_steps, inner_lr, penalty,
    learning_rate, max_steps, patience, validation_share, equal_clusters, seed
        The settings of ``rfp.fit`` (same defaults); case weights go to
        ``fit(..., sample_weight=)``, scikit-learn's name for them.
    cluster_column : int, optional
        Index of the column of X that holds the cluster (module docstring);
        needed when ``fit`` gets no ``groups`` (e.g. inside DoubleML).
    progress : bool
        Show a progress bar while fitting.

    Attributes
    ----------
    model_ : FittedModel
        The fitted model.
    """

    _loss = "squared"

    def fit(self, X, y, groups=None, sample_weight=None):
        """Fit on features X and outcome y; ``groups`` are the clusters.

        Parameters
        ----------
        X : array-like (n, p)
        y : array-like (n,)
        groups : array-like (n,), optional
            Cluster labels; default the ``cluster_column`` of X.
        sample_weight : array-like (n,), optional
            Case weights (``rfp.fit``'s ``weights``), one number >= 0 per row.

        Returns
        -------
        self
        """
        return self._fit(X, y, groups, sample_weight)

    def predict(self, X):
        """E[y | x] for the rows of X (array-like; the cluster column, if
        any, is dropped). Returns a NumPy array."""
        return self._response(X)


class RFPClassifier(ClassifierMixin, _RFPBase):
    """The method as a scikit-learn binary classifier (logistic loss). The
    target takes any two labels (numbers, strings, booleans), as in
    scikit-learn: ``classes_`` holds them sorted, the second is the
    "positive" class of ``predict_proba[:, 1]``, and ``predict`` returns the
    original labels. Parameters as ``RFPRegressor``.

    Attributes
    ----------
    model_ : FittedModel
    classes_ : ndarray, the two labels of the target, sorted
    """

    _loss = "logistic"

    def fit(self, X, y, groups=None, sample_weight=None):
        """Fit P(y = classes_[1] | x) (see ``RFPRegressor.fit``); y holds
        exactly two distinct labels."""
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None")
        y = np.asarray(y)
        if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
            raise ValueError(f"y has {int((~np.isfinite(y)).sum())} missing value(s) (NaN or "
                             f"inf); drop those rows before fitting")
        if y.dtype.kind == "O" and any(v is None for v in y):
            raise ValueError("y has missing labels (None); drop those rows before fitting")
        X, y = validate_data(self, X, y, accept_sparse=False, ensure_min_samples=2,
                             ensure_all_finite=False, dtype="numeric")
        check_classification_targets(y)   # "Unknown label type" for a continuous target
        try:
            classes, codes = np.unique(y, return_inverse=True)
        except TypeError:
            raise ValueError("y mixes labels of different types (e.g. numbers and strings); "
                             "give one type of label") from None
        shown = classes[:10].tolist()
        if classes.size < 2:
            raise ValueError(f"y has only one class ({shown[0]!r}): a classifier needs a target "
                             f"with two classes")
        if classes.size > 2:
            raise ValueError(f"Only binary classification is supported: RFPClassifier is a "
                             f"binary classifier and needs a target with two "
                             f"classes (e.g. coded 0/1); y has {classes.size}: {shown}"
                             f"{' ...' if classes.size > 10 else ''}")
        self.classes_ = classes
        return self._fit(X, codes.reshape(-1).astype(float), groups, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False   # two classes only
        return tags

    def predict_proba(self, X):
        """(n, 2) array: P(y = classes_[0] | x) and P(y = classes_[1] | x)."""
        p1 = self._response(X)
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X):
        """The label (from ``classes_``) with the larger probability."""
        p1 = self._response(X)
        return self.classes_[(p1 > 0.5).astype(int)]
