"""Saving and loading (issue 10, items 1 and 4): atomic saves, every cluster
label type, and "not an rfp model file (...)" for damaged or foreign files."""
import datetime as dt
import decimal
import io
import json
import os
import pathlib

import numpy as np
import jax
import pyarrow as pa
import pytest

import rfp
from rfp.persist import read as persist, write as persist_write


def table(g):
    rng = np.random.default_rng(0)
    n = len(g)
    return pa.table({"y": rng.normal(size=n), "x": rng.normal(size=n), "g": g})


def fit(t, **kw):
    return rfp.fit(t, y="y", x=["x"], cluster="g", **{"max_steps": 10, "patience": None,
                                                       "hidden": (3,), **kw})


CLUSTERS = np.repeat(np.arange(4), 8)
LABELS = {
    "date": pa.array([dt.date(2020, 1, 1) + dt.timedelta(days=int(i)) for i in CLUSTERS]),
    "timestamp": pa.array([dt.datetime(2020, 1, 1, 12) + dt.timedelta(hours=int(i))
                           for i in CLUSTERS]),
    "timestamp_tz": pa.array([dt.datetime(2020, 1, 1) + dt.timedelta(minutes=int(i))
                              for i in CLUSTERS], type=pa.timestamp("ns", tz="UTC")),
    "duration": pa.array([dt.timedelta(seconds=int(i)) for i in CLUSTERS]),
    "time": pa.array([dt.time(int(i)) for i in CLUSTERS]),
    "decimal": pa.array([decimal.Decimal(int(i)) / 2 for i in CLUSTERS]),
    "string": pa.array([f"s{i}" for i in CLUSTERS]),
    "dictionary": pa.array([f"s{i}" for i in CLUSTERS]).dictionary_encode(),
    "bool": pa.array([bool(i % 2) for i in CLUSTERS]),
    "uint64": pa.array(CLUSTERS.astype(np.uint64) + np.uint64(2 ** 63)),
    "int8": pa.array(CLUSTERS.astype(np.int8)),
    "float": pa.array(CLUSTERS + 0.25),
}


@pytest.mark.parametrize("kind", list(LABELS))
def test_every_cluster_type_round_trips(tmp_path, kind):
    """Item 1: dates failed with 'Object of type date is not JSON serializable'."""
    t = table(LABELS[kind])
    m = fit(t)
    path = tmp_path / "m.rfp"
    m.save(path)
    back = rfp.load(path)
    for name in ("cluster_labels", "train_clusters", "validation_clusters"):
        a, b = getattr(m, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    np.testing.assert_array_equal(back.predict(t, as_numpy=True), m.predict(t, as_numpy=True))
    assert os.listdir(tmp_path) == ["m.rfp"]  # no temporary file left


def test_failed_save_keeps_the_existing_file_byte_for_byte(tmp_path, monkeypatch):
    t = table(CLUSTERS)
    path = tmp_path / "good.rfp"
    fit(t).save(path)
    before = path.read_bytes()
    # a model that cannot be saved (a function as activation) is refused before writing
    bad = fit(t, activation=jax.nn.soft_sign)
    with pytest.raises(ValueError, match="cannot save this model: its setting activation is "
                                         "a function"):
        bad.save(path)
    assert path.read_bytes() == before
    # a failure while writing (a full disk) leaves the target and no temporary file
    def full_disk(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        fit(t, seed=1).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["good.rfp"]


def test_save_keeps_the_targets_permissions(tmp_path):
    path = tmp_path / "m.rfp"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    fit(table(CLUSTERS)).save(path)
    assert (os.stat(path).st_mode & 0o777) == 0o640
    assert rfp.load(path).n_obs == len(CLUSTERS)


# ----------------------------------------------------------------------------
# damaged and foreign files


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "m.rfp"
    model = fit(table(CLUSTERS))
    model.save(path)
    with np.load(path) as f:
        members = {k: f[k] for k in f.files}
    return path.read_bytes(), members


def rewrite(members, **changes):
    out = {k: v for k, v in {**members, **changes}.items() if v is not None}
    buffer = io.BytesIO()
    np.savez(buffer, **out)
    return buffer.getvalue()


def with_meta(members, edit):
    meta = json.loads(str(members["meta"]))
    edit(meta)
    return rewrite(members, meta=np.array(json.dumps(meta)))


def damaged_files(good):
    raw, members = good
    rng = np.random.default_rng(1)
    npy = io.BytesIO()
    np.save(npy, np.arange(3.0))
    pickled = io.BytesIO()
    np.savez(pickled, meta=np.array([{"a": 1}], dtype=object))
    return {
        "random bytes": (b"\x01" + rng.bytes(500), "not a .npz archive"),
        "empty": (b"", "not a .npz archive"),
        "truncated": (raw[: len(raw) // 2], "a damaged or truncated archive"),
        "npy": (npy.getvalue(), "a single NumPy array"),
        "no meta": (rewrite(members, meta=None), "no 'meta' member"),
        "pickled meta": (pickled.getvalue(), "pickled Python objects"),
        "bad json": (rewrite(members, meta=np.array("{not json")), "not valid JSON"),
        "json list": (rewrite(members, meta=np.array("[1, 2]")), "not a JSON object"),
        "other format": (with_meta(members, lambda m: m.update(format="x")), "format 'x'"),
        "missing key": (with_meta(members, lambda m: m.pop("history")), "lacks ['history']"),
        "missing leaf": (rewrite(members, leaf0=None), "parameter leaf0 is missing"),
        "wrong shape": (rewrite(members, leaf0=np.zeros((5, 7))), "do not fit a mlp model"),
        "string leaf": (rewrite(members, leaf1=np.array(["a", "b", "c"])),
                        "not an array of finite numbers"),
        "nan leaf": (rewrite(members, leaf1=np.full(3, np.nan)), "not an array of finite"),
        "bad scale": (rewrite(members, x_scale=np.zeros(1)), "positive scales"),
        "no labels": (rewrite(members, cluster_labels=None), "lacks the member(s)"),
        "huge ode": (with_meta(members, lambda m: m["config"].update(model="neural_ode",
                                                                     steps=10 ** 7)),
                     "steps must be a whole number in [1, 1000]"),
        "string setting": (with_meta(members, lambda m: m["config"].update(first_order="False")),
                           "first_order must be True or False"),
        "bad structure": (with_meta(members, lambda m: m.update(structure={"leaf": "x"})),
                          "parameter structure is damaged"),
        "bad history": (with_meta(members, lambda m: m.update(history={"step": 1})),
                        "training history is damaged"),
    }


def test_damaged_or_foreign_files_say_what_is_wrong(good, tmp_path):
    """Item 4: every one used to end in BadZipFile, EOFError, KeyError,
    JSONDecodeError, an invitation to allow_pickle=True or a JAX shape error."""
    for name, (content, message) in damaged_files(good).items():
        path = tmp_path / f"{name.replace(' ', '_')}.rfp"
        path.write_bytes(content)
        with pytest.raises(ValueError) as info:
            rfp.load(path)
        text = str(info.value)
        assert text.startswith(f"{path} is not an rfp model file ("), (name, text)
        assert message in text, (name, text)
        assert "allow_pickle" not in text


def test_a_folder_and_a_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not an rfp model file"):
        rfp.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such model file"):
        rfp.load(tmp_path / "absent.rfp")


DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
# Model files written by earlier rfp commits (tests/data/README.md): format
# rfp-model-1 (cluster labels in the JSON) by c33538d, the last commit before
# df97b71 moved the labels into arrays; rfp-model-2 as df97b71 first wrote it
# (no cross-validation, no ensemble members); a tuned model with its
# cross-validation by 9707963, before 64c21d3 saved the paired columns.
# Each *_expected.npz holds the new data and the predictions the writing
# commit's own code made on it.
FROZEN = [("format1_c33538d", "mlp", "rfp-model-1"), ("format1_c33538d", "logistic", "rfp-model-1"),
          ("format2_df97b71", "mlp", "rfp-model-2"), ("format2_df97b71", "logistic", "rfp-model-2"),
          ("format2_9707963", "tuned", "rfp-model-2")]


@pytest.mark.parametrize("tag, name, format", FROZEN)
def test_files_of_earlier_formats_load_and_predict_as_written(tag, name, format):
    path = DATA / f"{tag}_{name}.rfp"
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        assert meta["format"] == format
        assert ("cluster_labels" in f.files) == (format != "rfp-model-1")
    with np.load(DATA / f"{tag}_expected.npz") as f:
        expected = {k: f[k] for k in f.files}
    back = rfp.load(path)
    new = pa.table({"x1": expected["new_x1"], "x2": expected["new_x2"]})
    np.testing.assert_allclose(back.predict(new, as_numpy=True), expected[f"{name}_predict"],
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(back.cluster_labels.astype(str),
                                  expected[f"{name}_cluster_labels"])
    assert back.x_names == ["x1", "x2"]
    if name == "tuned":                               # its cross-validation comes back too
        assert back.config["model"] == "mlp" and back.config["hidden"] == (4,)
        np.testing.assert_array_equal(back.cv.loss, meta["cv"]["loss"])   # the 2 x 2 grid
        assert [row["chosen"] for row in back.cv.table()].count(True) == 1


def test_a_format_1_file_resaves_in_todays_format(tmp_path):
    back = rfp.load(DATA / "format1_c33538d_mlp.rfp")
    path = tmp_path / "again.rfp"
    back.save(path)
    with np.load(path) as f:
        assert json.loads(str(f["meta"]))["format"] == persist_write.FORMAT
    with np.load(DATA / "format1_c33538d_expected.npz") as f:
        new = pa.table({"x1": f["new_x1"], "x2": f["new_x2"]})
        np.testing.assert_array_equal(rfp.load(path).predict(new, as_numpy=True),
                                      back.predict(new, as_numpy=True))


def test_a_tuned_model_keeps_its_cross_validation(tmp_path):
    """A saved tuned model loads with the same cv table, curves and choice;
    a damaged table is refused with the file's name."""
    t = table(LABELS["int8"])
    m = rfp.tune(t, y="y", x=["x"], cluster="g", grid={"alpha": [1.0, 0.5],
                                                       "hidden": [(4,), (8,)]},
                 folds=2, max_steps=20, patience=None, progress=False)
    path = tmp_path / "tuned.rfp"
    m.save(path)
    back = rfp.load(path)
    assert back.cv.table() == m.cv.table()
    assert repr(back.cv) == repr(m.cv)
    for a, b in zip(back.cv.curves, m.cv.curves):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.cv.fold_of_cluster, m.cv.fold_of_cluster)
    assert fit(t).cv is None
    with pytest.raises(ValueError, match="cross-validation table is damaged"):
        persist._read_cv({"configs": [{}], "loss": []}, lambda why: ValueError(why))
