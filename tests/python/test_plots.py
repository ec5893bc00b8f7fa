"""Plots draw what they claim: one mark per covariate / method, the right data,
titles, axis labels and legends (the same content as the R package's plots)."""
import numpy as np
import pyarrow as pa

import rfp
from rfp import plots


def test_love_plot_has_before_and_after_per_covariate(tmp_path):
    b = {"covariate": ["a", "b", "c"], "smd_before": [0.5, -0.3, 0.05], "smd_after": [0.0, 0.01, -0.02]}
    fig = plots.love_plot(b, path=tmp_path / "love.png")
    ax = fig.axes[0]
    before, after = ax.collections[1:3]
    np.testing.assert_allclose(before.get_offsets()[:, 0], [0.5, 0.3, 0.05])
    np.testing.assert_allclose(after.get_offsets()[:, 0], [0.0, 0.01, 0.02])
    assert ax.get_title() == "Balance"
    assert ax.get_xlabel() == "|standardised mean difference|"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["after weighting", "before weighting", "|SMD| = 0.1"]
    assert (tmp_path / "love.png").stat().st_size > 1000


def test_estimates_plot_draws_each_interval_coloured_by_estimand():
    t = pa.table({"method": ["fe", "dml", "aipw"], "estimand": ["PLM", "PLM", "ATT"],
                  "estimate": [1.0, 2.0, 1.5], "ci_low": [0.5, 1.0, 1.1],
                  "ci_high": [1.5, 3.5, 1.9]})
    fig = plots.estimates(t, truth={"PLM": 1.2, "ATT": 1.3})
    ax = fig.axes[0]
    drawn = sorted(x for line in ax.lines for x in np.atleast_1d(line.get_xdata())
                   if line.get_marker() == "o")
    assert drawn == [1.0, 1.5, 2.0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["ATT", "PLM", "truth"]
    truth = ax.collections[-1].get_offsets()[:, 0]
    np.testing.assert_allclose(sorted(truth), [1.2, 1.2, 1.3])
    assert ax.get_xlabel() == "estimate" and "95% intervals" in ax.get_title()


def test_fit_curve_and_loss_curves_use_the_model():
    sim = rfp.simulate.tragic_triad(n_clusters=6, n_per_cluster=10, seed=0)
    m = rfp.fit(sim.data, y="y", x=["x"], cluster="cluster", max_steps=40, patience=20)
    fig = plots.fit_curve({"rfp": m}, sim.data["x"].to_numpy(), sim.data["y"].to_numpy(),
                          sim.data["cluster"].to_numpy(), truth=sim.truth)
    ax = fig.axes[0]
    fit_line = ax.lines[-1]
    np.testing.assert_allclose(fit_line.get_ydata(), m.predict({"x": fit_line.get_xdata()}, as_numpy=True))
    colours = ax.collections[0].get_array()          # points coloured by cluster code
    assert len(np.unique(colours)) == 6
    assert "coloured by cluster (6)" in [t.get_text() for t in ax.get_legend().get_texts()][0]
    assert fig._suptitle.get_text() == "Fitted functions along x"

    fig2 = plots.loss_curves(m)
    top, bottom = fig2.axes
    assert top.get_title() == "training objective R_k (training clusters)"
    assert bottom.get_title() == "pooled loss L (held-out clusters)"
    np.testing.assert_allclose(top.lines[0].get_ydata(), m.history.train)
    np.testing.assert_allclose(bottom.lines[0].get_ydata(), m.history.validation)
    assert list(top.lines[0].get_xdata()) == list(m.history.step)
    assert bottom.get_xlabel() == "outer step"
    assert top.lines[1].get_xdata()[0] == m.best_step   # the best step, marked in each panel
