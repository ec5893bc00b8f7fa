"""The bag-of-words candidates of a text ``tune``: ridge regressions on word
frequencies, solved directly on each fold.

With text columns, the simple candidate between the linear model on the
numeric controls and the text network is linear in the words:

    f(x) = a + sum_c mean_{t in text c} beta_{token t} + x'b,

the text model (``models.text_bag``) with one number per word
(``embedding_dim = 1``) and a linear head whose weights on the C pooled
columns are 1.  Under the squared loss at alpha = 1 its penalised least
squares, sum_i w_i (y_i - f(x_i))^2 + lam * sum_i w_i * (|beta|^2 + |b|^2)
(intercept free), has a closed form.  Each fold eigen-decomposes the centred
Gram matrix once and solves for every lam of ``RIDGE`` at the cost of a
matrix product; ``rows`` returns the per-cluster held-out sums that
``selection.simplest_within`` compares, and ``text_params`` turns a solution
into the text model's parameters, so that a chosen bag of words predicts,
saves and loads like any text fit.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from rfp.tuning.selection import cluster_sums

# penalties lam, per unit of case weight (mean-pooled word frequencies are
# at most 1: a word in a share p of the rows weighs about p in the Gram matrix)
RIDGE = (1e-4, 1e-3, 1e-2, 1e-1)


def design(inputs: dict) -> sparse.csr_matrix:
    """[word frequencies (n x vocabulary), numeric controls (n x p)]: each
    text column's tokens averaged (one-hot), summed over the columns."""
    tokens, mask = np.asarray(inputs["tokens"]), np.asarray(inputs["mask"], dtype=float)
    n, _, _ = tokens.shape
    share = mask / np.maximum(mask.sum(axis=2, keepdims=True), 1.0)
    rows = np.broadcast_to(np.arange(n)[:, None, None], tokens.shape)
    real = mask > 0
    width = int(tokens.max(initial=1)) + 1
    words = sparse.csr_matrix((share[real], (rows[real], tokens[real])), shape=(n, width))
    return sparse.hstack([words, sparse.csr_matrix(np.asarray(inputs["x"], dtype=float))]).tocsr()


def solutions(z, y, w, lams=RIDGE) -> list[tuple[float, np.ndarray]]:
    """(intercept, coefficients) of the weighted ridge regression of y on the
    columns of z for each lam (penalty lam * sum(w), intercept unpenalised)."""
    total = float(np.sum(w))
    mean = np.asarray(z.T @ w).ravel() / total
    y_mean = float(w @ y) / total
    gram = np.asarray((z.T @ sparse.diags(w) @ z).todense()) - total * np.outer(mean, mean)
    cross = np.asarray(z.T @ (w * y)).ravel() - total * mean * y_mean
    values, vectors = np.linalg.eigh(gram)
    along = vectors.T @ cross
    out = []
    for lam in lams:
        coef = vectors @ (along / (np.maximum(values, 0.0) + lam * total))
        out.append((y_mean - float(mean @ coef), coef))
    return out


def rows(inputs, y, codes, w, fold, folds: int, lams=RIDGE) -> list[np.ndarray]:
    """Per lam, the per-cluster sums of w_i (y_i - f(x_i))^2 on held-out
    rows, each cluster scored by the ridge fitted on the other folds."""
    z = design(inputs)
    g = int(codes.max()) + 1
    fold_of_row = fold[codes]
    out = [np.zeros(g) for _ in lams]
    for f in range(folds):
        train, test = fold_of_row != f, fold_of_row == f
        for sums, (a, coef) in zip(out, solutions(z[train], y[train], w[train], lams)):
            sums += cluster_sums((y[test] - a - z[test] @ coef) ** 2, codes[test], g, w[test])
    return out


def text_params(inputs, y, w, lam: float, vocab_size: int) -> dict:
    """The ridge at ``lam`` on all rows, as parameters of ``text_bag`` with
    ``head = "linear"`` and ``embedding_dim = 1``."""
    z = design(inputs)
    (a, coef), = solutions(z, y, w, (lam,))
    columns = np.asarray(inputs["tokens"]).shape[1]
    width = z.shape[1] - np.asarray(inputs["x"]).shape[1]
    table = np.zeros((vocab_size, 1))
    table[:width, 0] = coef[:width]
    head = np.r_[np.ones(columns), coef[width:]][:, None]
    return {"embedding": table, "head": {"b": np.array([a]), "w": head}}
