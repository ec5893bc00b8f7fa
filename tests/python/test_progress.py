"""The progress rule shared with the R package (tests/testthat/test-progress.R):
a bar when the session is interactive or stderr is a terminal, forced by
progress=True/False, on stderr with the elapsed and remaining time, on by
default for rfp.effect and rfp.compare."""
import re
import sys

import pytest

import rfp
from rfp import progress
from rfp.simulate import cluster_trial


class FakeStream:
    def __init__(self, tty):
        self.tty = tty
        self.text = ""

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_rule_interactive_or_terminal(monkeypatch):
    monkeypatch.delattr(sys, "ps1", raising=False)
    monkeypatch.setattr(progress, "interactive_session", lambda: False)
    monkeypatch.setattr(sys, "stderr", FakeStream(tty=False))
    assert progress.wants_bar(None) is False              # a script with captured stderr
    monkeypatch.setattr(sys, "stderr", FakeStream(tty=True))
    assert progress.wants_bar(None) is True               # a terminal
    monkeypatch.setattr(sys, "stderr", FakeStream(tty=False))
    monkeypatch.setattr(progress, "interactive_session", lambda: True)
    assert progress.wants_bar(None) is True               # a prompt, IPython, Jupyter
    assert progress.wants_bar(False) is False and progress.wants_bar(True) is True
    with pytest.raises(ValueError, match="progress must be None, True, False or a callable"):
        progress.wants_bar("yes")


def test_python_prompt_counts_as_interactive(monkeypatch):
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    assert progress.interactive_session() is True


def test_effect_and_compare_show_a_bar_by_default_when_interactive(monkeypatch):
    """Default progress (None) in an interactive session: one bar on stderr,
    with tqdm's elapsed<remaining; nothing on stdout."""
    data = cluster_trial(n_strata=2, clusters_per_stratum=6, n_per_cluster=8, seed=1).data
    kw = dict(y="y", d="d", x=["x1", "x2", "z"], cluster="cluster", folds=2, model="linear",
              max_steps=20, patience=None, validation_share=0.0, repeats=1, nuisance="method")
    monkeypatch.setattr(progress, "interactive_session", lambda: True)
    err = FakeStream(tty=False)
    monkeypatch.setattr(sys, "stderr", err)
    rfp.effect(data, method="dml", **kw)
    assert "rfp fits" in err.text and "/4" in err.text
    assert re.search(r"\[\d\d:\d\d<(\d\d:\d\d|\?)", err.text)     # [elapsed<remaining
    err.text = ""
    rfp.compare(data, methods=["dml"], **kw)
    assert "rfp fits" in err.text
    monkeypatch.setattr(progress, "interactive_session", lambda: False)
    err.text = ""
    rfp.effect(data, method="dml", **kw)
    assert err.text == ""
