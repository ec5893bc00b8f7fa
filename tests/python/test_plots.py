"""Plots draw what they claim: one mark per covariate / method, the right data."""
import numpy as np
import pyarrow as pa

import rfp
from rfp import plots


def test_love_plot_has_before_and_after_per_covariate(tmp_path):
    b = {"covariate": ["a", "b", "c"], "smd_before": [0.5, -0.3, 0.05], "smd_after": [0.0, 0.01, -0.02]}
    fig = plots.love_plot(b, path=tmp_path / "love.png")
    before, after = fig.axes[0].collections[:2]
    np.testing.assert_allclose(before.get_offsets()[:, 0], [0.5, 0.3, 0.05])
    np.testing.assert_allclose(after.get_offsets()[:, 0], [0.0, 0.01, 0.02])
    assert (tmp_path / "love.png").stat().st_size > 1000


def test_estimates_plot_draws_each_interval():
    t = pa.table({"method": ["fe", "dml"], "estimand": ["ATE", "ATE"], "estimate": [1.0, 2.0],
                  "ci_low": [0.5, 1.0], "ci_high": [1.5, 3.5]})
    fig = plots.estimates(t, truth=1.2)
    line = fig.axes[0].lines[0]
    assert sorted(line.get_xdata()) == [1.0, 2.0]


def test_fit_curve_and_loss_curves_use_the_model():
    sim = rfp.simulate.tragic_triad(n_clusters=6, n_per_cluster=10, seed=0)
    m = rfp.fit(sim.data, y="y", x=["x"], cluster="cluster", max_steps=40, patience=20)
    fig = plots.fit_curve({"rfp": m}, sim.data["x"].to_numpy(), sim.data["y"].to_numpy(),
                          sim.data["cluster"].to_numpy(), truth=sim.truth)
    fit_line = fig.axes[0].lines[-1]
    np.testing.assert_allclose(fit_line.get_ydata(), m.predict({"x": fit_line.get_xdata()}, as_numpy=True))
    fig2 = plots.loss_curves(m)
    assert list(fig2.axes[0].lines[0].get_xdata()) == m.history.step
