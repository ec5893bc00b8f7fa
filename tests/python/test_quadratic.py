"""Linear models under the squared loss solved directly (rfp.quadratic).

R_k of a linear model under the squared loss is a quadratic in theta for any
alpha, k and eta; ``quadratic.minimise`` solves its normal equations in
NumPy.  Two independent checks: the gradient of ``bilevel.Objective`` (JAX,
second order through the inner steps) vanishes at the solution, and
gradient descent on that Objective run to convergence reaches it.  Then the
effects' linear nuisances use it: DML with ``model = "linear"`` and the
default alpha = 0.5 equals the same DML fitted by gradient descent.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfp.core import quadratic
from rfp.effects.estimators import dml_plm
from rfp.effects.folds import cluster_folds
from rfp.training.fit import fit_arrays, solve_arrays
from rfp.core.bilevel import Objective, gather, observation_weights
from rfp.core.layout import make_buckets
from rfp.core.models import linear
from rfp.simulate import cluster_trial


def _data(seed=0, g=25):
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(g), rng.integers(3, 20, g))          # unequal sizes
    x = rng.normal(size=(len(cl), 3)) + rng.normal(size=(g, 3))[cl]
    y = x @ np.array([1.0, -0.5, 0.3]) + rng.normal(size=g)[cl] + rng.normal(size=len(cl))
    w = rng.uniform(0.2, 3.0, len(cl))
    return x, y, cl, w


@pytest.mark.parametrize("alpha, k, eta, equal", [(0.5, 1, 0.1, False), (0.0, 3, 0.05, True),
                                                  (0.3, 2, 0.2, False), (1.0, 0, 0.1, False)])
def test_objective_gradient_vanishes_at_the_solution(alpha, k, eta, equal):
    x, y, cl, case = _data()
    w = observation_weights(cl, case, equal)
    params = quadratic.minimise(x, y, cl, w, alpha, k, eta)
    objective = Objective(linear().apply, "squared", k, eta)
    buckets = gather(make_buckets(cl), x, y, w, jnp.float64)
    grad = jax.grad(objective)(jax.tree.map(jnp.asarray, params), alpha, buckets)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grad)) < 1e-10
    # and it is a minimum: any perturbation raises R_k
    value = float(objective(jax.tree.map(jnp.asarray, params), alpha, buckets))
    rng = np.random.default_rng(1)
    for _ in range(5):
        moved = jax.tree.map(lambda a: jnp.asarray(a + 1e-3 * rng.normal(size=a.shape)), params)
        assert float(objective(moved, alpha, buckets)) > value


def test_solution_equals_gradient_descent_at_convergence():
    """fit_arrays (Adam on the standardised data, cosine schedule to zero, no
    held-out clusters) and solve_arrays (the same scaling): same predictions
    to 1e-8, with case weights and unequal clusters."""
    x, y, cl, w = _data(2)
    settings = dict(alpha=0.5, inner_steps=2, inner_lr=0.2, weights=w)
    direct = solve_arrays(x, y, cl, **settings)
    gd = fit_arrays(x, y, cl, model="linear", patience=None, max_steps=6000,
                    schedule="cosine", learning_rate=0.02, progress=False, **settings)
    assert np.max(np.abs(direct.predict_arrays(x) - gd.predict_arrays(x))) < 1e-8
    # a different alpha gives a different answer (the test can fail)
    other = solve_arrays(x, y, cl, **{**settings, "alpha": 1.0})
    assert np.max(np.abs(other.predict_arrays(x) - direct.predict_arrays(x))) > 1e-3


def test_solve_refuses_what_is_not_quadratic():
    x, y, cl, _ = _data()
    assert quadratic.is_quadratic({"model": "linear", "loss": "squared"})
    assert not quadratic.is_quadratic({"model": "mlp"})
    assert not quadratic.is_quadratic({"model": "linear", "first_order": True})
    assert not quadratic.is_quadratic({"model": "linear", "loss": "logistic"})
    with pytest.raises(ValueError, match="linear model under the squared loss"):
        solve_arrays(x, y, cl, first_order=True)


def test_collinear_controls_give_a_solution():
    """A copied control makes the normal equations singular: lstsq still
    solves them.  At alpha = 1 (least squares) the fit equals the fit
    without the copy; at alpha < 1 it need not (the inner step moves both
    copies, so the copy changes R_k), but the gradient still vanishes."""
    x, y, cl, w = _data(3)
    x2 = np.column_stack([x, x[:, 0]])
    a = solve_arrays(x, y, cl, alpha=1.0)
    b = solve_arrays(x2, y, cl, alpha=1.0)
    assert np.max(np.abs(a.predict_arrays(x) - b.predict_arrays(x2))) < 1e-8
    ones = np.ones(len(y))
    params = quadratic.minimise(x2, y, cl, ones, 0.5, 1, 0.1)
    buckets = gather(make_buckets(cl), x2, y, ones, jnp.float64)
    grad = jax.grad(Objective(linear().apply, "squared", 1, 0.1))(
        jax.tree.map(jnp.asarray, params), 0.5, buckets)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grad)) < 1e-10


def test_dml_with_linear_outcome_nuisance_equals_gradient_descent(monkeypatch, descents):
    """Issue 11: DML with model = "linear" at the default alpha = 0.5 and one
    inner step: the outcome nuisance is solved directly (no gradient descent
    for the squared loss); with the direct path switched off, gradient descent
    to convergence gives the same estimate and SE to 1e-6.  The binary
    treatment's logistic nuisance is gradient descent in both runs."""
    sim = cluster_trial(4, 8, 15, overlap="high", seed=3)
    x = ["x1", "x2", "z"]
    fold = cluster_folds(sim.data["cluster"].to_numpy(), 4, 0, sim.data["d"].to_numpy())
    settings = dict(model="linear", validation_share=0.0, max_steps=3000, learning_rate=0.02,
                    schedule="cosine", patience=None)
    direct = dml_plm(sim, x=x, nuisance="method", fold=fold, **settings)
    assert descents == ["logistic"] * 4                # the outcome's fits were solved
    monkeypatch.setattr(quadratic, "is_quadratic", lambda settings: False)
    gd = dml_plm(sim, x=x, nuisance="method", fold=fold, **settings)
    assert sorted(descents) == ["logistic"] * 8 + ["squared"] * 4
    assert abs(gd.estimate - direct.estimate) < 1e-6
    assert abs(gd.std_error - direct.std_error) < 1e-6
