"""Text columns as inputs (issue 21): tokenisation, the embedding bag, the
clusters x observations x tokens batch, saving, errors and tune."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pytest

import rfp
from rfp import simulate
from rfp.persist.read import NotAModelFile
from rfp.core.bilevel import Objective, gather, observation_weights
from rfp.core.layout import Bucket, make_buckets
from rfp.core.models import text_bag
from rfp.core.text import TextEncoder

TEXTS = {"title": ["The red dog", "an old Harbour", "", "red red red sun", "zebra"],
         "medium": ["oil on canvas", "graphite on paper", "oil", "", "canvas"]}


def small(seed=0, n_clusters=12, n_per_cluster=8):
    return simulate.text_clusters(n_clusters=n_clusters, n_per_cluster=n_per_cluster,
                                  seed=seed).data


def quiet_fit(data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rfp.fit(data, "y", x=kw.pop("x", ["x1"]), text=kw.pop("text", "title"),
                       cluster="cluster", progress=False,
                       **{"max_steps": 30, "patience": None, "hidden": (4,),
                          "embedding_dim": 3, **kw})


# --------------------------------------------------------------------------
# tokenisation

def test_encoding_round_trips_and_unknown_words_map_to_unk():
    enc = TextEncoder.fit(TEXTS, vocab_size=200, max_tokens=8)
    again = TextEncoder.from_json(enc.to_json())
    a, b = enc.encode(TEXTS), again.encode(TEXTS)
    assert np.array_equal(a["tokens"], b["tokens"]) and np.array_equal(a["mask"], b["mask"])
    assert a["tokens"].shape == (5, 2, enc.length) and a["tokens"].dtype == np.int32
    # lower-cased: "The" and "the" are one token; the empty text has no token
    assert enc.tokens("The red dog") == enc.tokens("the RED dog")
    assert a["mask"][2, 0].sum() == 0 and a["mask"][3, 1].sum() == 0
    # the mask marks exactly the tokens the tokenizer produced
    assert a["mask"][0, 0].sum() == len(enc.tokens("The red dog"))
    # a word never seen in training is the unknown token
    new = enc.encode({"title": ["quixotic red"], "medium": ["oil"]})   # a word not in training
    assert new["tokens"][0, 0, 0] == enc.tokenizer.token_to_id("[UNK]") == 1
    assert new["tokens"][0, 0, 1] == enc.encode({"title": ["red"], "medium": [""]})["tokens"][0, 0, 0]
    # the same training text gives the same vocabulary
    assert TextEncoder.fit(TEXTS, vocab_size=200).to_json() == \
        TextEncoder.fit(TEXTS, vocab_size=200).to_json()


def test_words_of_one_cluster_are_unknown_and_the_vocabulary_is_capped():
    texts = {"t": ["red dog", "red cat", "dog sun", "red sun", "moon moon"]}
    cluster = [0, 1, 1, 2, 2]
    enc = TextEncoder.fit(texts, cluster=cluster)           # word_clusters = 2
    assert enc.words() == ["[PAD]", "[UNK]", "red", "dog", "sun"]   # by count, then spelling
    assert enc.length == 2   # the longest training text
    assert enc.encode({"t": ["cat red"]})["tokens"][0, 0].tolist() == [1, 2]
    assert TextEncoder.fit(texts, cluster=cluster, word_clusters=3).words() == \
        ["[PAD]", "[UNK]", "red"]
    assert TextEncoder.fit(texts, vocab_size=3, cluster=cluster).words() == \
        ["[PAD]", "[UNK]", "red"]


def test_long_texts_keep_their_first_max_tokens():
    enc = TextEncoder.fit({"t": ["a b c d e f g h"]}, vocab_size=100, max_tokens=3,
                          word_clusters=1)
    assert enc.length == 3
    out = enc.encode({"t": ["a b c d e f g h"]})
    assert out["mask"].sum() == 3
    assert list(out["tokens"][0, 0]) == [enc.tokenizer.token_to_id(w) for w in "abc"]


# --------------------------------------------------------------------------
# the embedding bag

def bag_inputs(enc, texts, x, pad_to=None):
    out = enc.encode(texts)
    if pad_to is not None:
        extra = pad_to - out["tokens"].shape[-1]
        out = {k: np.pad(v, ((0, 0), (0, 0), (0, extra))) for k, v in out.items()}
    return {**out, "x": x}


def test_predictions_do_not_depend_on_the_padding_length():
    enc = TextEncoder.fit(TEXTS, vocab_size=200)
    m = text_bag("mlp", (5,), "tanh", 4, 200)
    x = np.random.default_rng(0).normal(size=(5, 2))
    short, padded = bag_inputs(enc, TEXTS, x), bag_inputs(enc, TEXTS, x, pad_to=enc.length + 9)
    params = m.init(jax.random.PRNGKey(1), short)
    a, _ = m.apply(params, short)
    b, _ = m.apply(params, padded)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-13)
    # and through a fitted model, whose encoder pads to its own length
    fitted = quiet_fit(small())
    rows = {"title": ["red old", "dog"], "x1": [0.1, -1.0]}
    p = fitted.predict(rows, as_numpy=True)
    raw = fitted.predict_arrays(bag_inputs(fitted.text, {"title": rows["title"]},
                                           np.array(rows["x1"])[:, None],
                                           pad_to=fitted.text.length + 5))
    np.testing.assert_allclose(p, raw, rtol=0, atol=1e-12)


def test_the_mean_of_embeddings_is_what_the_head_sees():
    """Independent check of the pooling: a linear head on a one-word text is
    that word's embedding times the head's weights."""
    enc = TextEncoder.fit({"t": ["red dog", "red"]}, vocab_size=50, word_clusters=1)
    m = text_bag("linear", (1,), "tanh", 3, 50)
    inputs = bag_inputs(enc, {"t": ["red dog"]}, np.zeros((1, 0)))
    params = m.init(jax.random.PRNGKey(0), inputs)
    ids = [enc.tokenizer.token_to_id(w) for w in ("red", "dog")]
    pooled = np.asarray(params["embedding"])[ids].mean(axis=0)
    want = pooled @ np.asarray(params["head"]["w"])[:, 0] + float(params["head"]["b"][0])
    got = float(m.apply(params, inputs)[0][0])
    assert got == pytest.approx(want, abs=1e-12)


def test_a_bucketed_pytree_batch_equals_clusters_one_at_a_time():
    """R_k over the padded clusters x observations x tokens buckets equals the
    same sum computed one cluster at a time without padding (float64)."""
    data = simulate.text_clusters(n_clusters=9, n_per_cluster=6, seed=3).data.to_pandas()
    sizes = np.array([2, 3, 5, 6, 6, 4, 1, 6, 5])          # unequal clusters
    keep = np.concatenate([np.flatnonzero(data.cluster == c)[:s] for c, s in enumerate(sizes)])
    data = data.iloc[keep].reset_index(drop=True)
    enc = TextEncoder.fit({"title": list(data.title)}, vocab_size=100)
    x = {**enc.encode({"title": list(data.title)}), "x": data[["x1"]].to_numpy()}
    y, codes = data.y.to_numpy(), data.cluster.to_numpy()
    m = text_bag("mlp", (4,), "tanh", 3, 100)
    objective = Objective(m.apply, "squared", inner_steps=2, inner_lr=0.3)
    params = m.init(jax.random.PRNGKey(2), jax.tree.map(lambda a: a[:1], x))
    w = observation_weights(codes)
    batched = float(objective(params, 0.3, gather(make_buckets(codes), x, y, w)))
    num = den = 0.0
    for c in np.unique(codes):
        rows = np.flatnonzero(codes == c)
        one = Bucket(rows[None, :], np.ones((1, len(rows))), np.array([c]))
        s = objective.bucket_sums(params, 0.3, gather([one], x, y, w)[0])
        num, den = num + float(s[0]), den + float(s[1])
    assert len(make_buckets(codes)) < len(sizes)   # padding happened
    assert batched == pytest.approx(num / den, rel=1e-10)


# --------------------------------------------------------------------------
# fit, predict, save

def test_fit_predicts_new_rows_and_saves_with_its_vocabulary(tmp_path):
    fitted = quiet_fit(small())
    assert fitted.config["model"] == "text" and fitted.config["head"] == "mlp"
    new = {"title": ["red old harbour", "never seen words here", ""], "x1": [0.0, 1.0, 2.0]}
    p = fitted.predict(new, as_numpy=True)
    assert p.shape == (3,) and np.all(np.isfinite(p))
    path = tmp_path / "text.rfp"
    fitted.save(path)
    loaded = rfp.load(path)
    assert loaded.text.to_json() == fitted.text.to_json()
    assert np.array_equal(loaded.predict(new, as_numpy=True), p)
    with np.load(path, allow_pickle=False) as z:   # no pickle in the file
        assert "tokenizer" in str(z["meta"])


def test_a_damaged_vocabulary_is_not_a_model_file(tmp_path):
    fitted = quiet_fit(small())
    bad = TextEncoder(fitted.text.tokenizer, ["title"], fitted.text.length)
    fitted.text = bad
    fitted.config["vocab_size"] = 3      # smaller than the vocabulary
    path = tmp_path / "bad.rfp"
    fitted.save(path)
    with pytest.raises(NotAModelFile, match="vocabulary does not match"):
        rfp.load(path)


def test_text_alone_or_with_two_columns_and_a_linear_head():
    data = small().to_pandas()
    data["medium"] = np.where(data.x1 > 0, "oil on canvas", "paper")
    only = quiet_fit(data, x=None)
    assert only.x_names == [] and only.text.columns == ["title"]
    two = quiet_fit(data, text=["title", "medium"], model="linear")
    assert two.config["head"] == "linear" and two.text.columns == ["title", "medium"]
    p = two.predict(data.iloc[:4], as_numpy=True)
    assert np.all(np.isfinite(p))


def test_unit_weights_change_nothing_and_weights_enter_the_text_fit():
    data = small().to_pandas()
    data["w"] = 1.0
    a = quiet_fit(data).predict(data, as_numpy=True)
    b = quiet_fit(data, weights="w").predict(data, as_numpy=True)
    np.testing.assert_allclose(a, b, rtol=1e-10)
    data["w"] = np.where(data.cluster == 0, 5.0, 1.0)
    c = quiet_fit(data, weights="w").predict(data, as_numpy=True)
    assert np.max(np.abs(c - a)) > 1e-6


def test_fit_is_reproducible():
    a = quiet_fit(small()).predict(small(), as_numpy=True)
    b = quiet_fit(small()).predict(small(), as_numpy=True)
    assert np.array_equal(a, b)


def test_predict_adapted_takes_text():
    fitted = quiet_fit(small())
    out = fitted.predict_adapted(small(), "y", "cluster", as_numpy=True)
    assert out.shape == (small().num_rows,) and np.all(np.isfinite(out))


# --------------------------------------------------------------------------
# bad input

def test_bad_text_input_is_named():
    data = small().to_pandas()
    with pytest.raises(ValueError, match="text column 'x1' holds double, not text"):
        rfp.fit(data, "y", text="x1", cluster="cluster")
    with pytest.raises(ValueError, match="text column 'title' is also the numeric control"):
        rfp.fit(data, "y", x=["title"], text="title", cluster="cluster")
    with pytest.raises(ValueError, match="'nope'"):
        rfp.fit(data, "y", text="nope", cluster="cluster")
    with pytest.raises(ValueError, match="model must be 'mlp' \\(default\\) or 'linear'"):
        rfp.fit(data, "y", text="title", cluster="cluster", model="neural_ode")
    with pytest.raises(ValueError, match="needs text columns"):
        rfp.fit(data, "y", x=["x1"], cluster="cluster", model="text")
    with pytest.raises(ValueError, match="embedding_dim"):
        rfp.fit(data, "y", text="title", cluster="cluster", embedding_dim=0)
    missing = pa.Table.from_pandas(data).set_column(
        1, "title", pa.array([None] + list(data.title[1:])))
    with pytest.raises(ValueError, match="column 'title' has 1 missing value.*first at row 1"):
        rfp.fit(missing, "y", text="title", cluster="cluster")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fitted = rfp.fit(missing, "y", x=["x1"], text="title", cluster="cluster",
                         na_action="omit", max_steps=5, patience=None, progress=False)
    assert any("dropped 1 row" in str(w.message) for w in seen)
    assert fitted.n_obs == len(data) - 1
    with pytest.raises(ValueError, match="column 'title' has 1 missing value"):
        fitted.predict(missing)
    assert np.isnan(fitted.predict(missing, na_action="omit", as_numpy=True)[0])


def test_token_inputs_for_fit_arrays_are_checked():
    x = {"tokens": np.full((6, 1, 2), 7), "mask": np.ones((6, 1, 2)), "x": np.zeros((6, 0))}
    with pytest.raises(ValueError, match="outside \\[0, vocab_size = 5\\)"):
        rfp.fit_arrays(x, np.arange(6.0), np.repeat([0, 1], 3), model="text", vocab_size=5)
    with pytest.raises(ValueError, match="model 'text' takes x ="):
        rfp.fit_arrays(np.zeros((6, 1)), np.arange(6.0), np.repeat([0, 1], 3), model="text")


# --------------------------------------------------------------------------
# tune

def test_tune_with_text_scores_the_mean_the_linear_model_and_the_text_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = rfp.tune(small(n_clusters=15), "y", x=["x1"], text="title", cluster="cluster",
                          grid={"alpha": [1.0, 0.0]}, max_steps=40, folds=3, progress=False,
                          hidden=(4,), embedding_dim=3)
    models = [c["model"] for c in fitted.cv.configs]
    assert "linear" in models and "text" in models
    assert np.isfinite(fitted.cv.mean_loss)
    p = fitted.predict(small(seed=9), as_numpy=True)
    assert np.all(np.isfinite(p))
    with pytest.raises(ValueError, match="grid\\['head'\\]"):
        rfp.tune(small(), "y", text="title", cluster="cluster", grid={"model": ["mlp"]})


def test_nearest_words_by_cosine_similarity():
    """Checked against a direct computation on a hand-made table."""
    enc = TextEncoder.fit({"t": ["a b c", "a b c d"]}, word_clusters=1)
    ids = {w: enc.tokenizer.token_to_id(w) for w in "abcd"}
    table = np.zeros((10, 2))
    table[ids["a"]] = [1, 0]
    table[ids["b"]] = [1, 0.1]
    table[ids["c"]] = [0, 1]
    table[ids["d"]] = [-1, 0]
    got = enc.nearest(table, "a", n=3)
    assert [w for w, _ in got] == ["b", "c", "d"]
    assert got[0][1] == pytest.approx(1 / np.sqrt(1.01), abs=1e-12)
    with pytest.raises(ValueError, match="not one word of the vocabulary"):
        enc.nearest(table, "zebra")
    fitted = quiet_fit(small())
    near = fitted.nearest_words("red", n=2)
    assert len(near) == 2 and all(-1 <= s <= 1 for _, s in near)


# --------------------------------------------------------------------------
# the bag-of-words candidates

def test_bag_of_words_ridge_equals_scikit_learn_and_the_text_model():
    from sklearn.linear_model import Ridge
    from rfp.tuning import bag_of_words
    data = small(n_clusters=10, n_per_cluster=12).to_pandas()
    enc = TextEncoder.fit({"title": list(data.title)}, cluster=data.cluster)
    inputs = {**enc.encode({"title": list(data.title)}), "x": data[["x1"]].to_numpy()}
    y = data.y.to_numpy()
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    z = bag_of_words.design(inputs)
    # the design: each row's word frequencies sum to 1 (a non-empty title)
    np.testing.assert_allclose(np.asarray(z[:, :-1].sum(axis=1)).ravel(), 1.0)
    lam = 1e-2
    (a, coef), = bag_of_words.solutions(z, y, w, (lam,))
    ref = Ridge(alpha=lam * w.sum(), solver="cholesky", tol=1e-12).fit(z.toarray(), y,
                                                                       sample_weight=w)
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-8)
    assert a == pytest.approx(ref.intercept_, abs=1e-8)
    params = bag_of_words.text_params(inputs, y, w, lam, 2000)
    yhat, _ = text_bag("linear", (32, 32), "tanh", 1, 2000).apply(params, inputs)
    np.testing.assert_allclose(np.asarray(yhat), ref.predict(z.toarray()), atol=1e-10)


def test_a_chosen_bag_of_words_predicts_saves_and_loads(tmp_path):
    data = small(n_clusters=15).to_pandas()
    data["y"] = data.title.str.contains("red") * 2.0 + data.cluster.map(
        dict(enumerate(np.random.default_rng(1).normal(0, 0.1, 15)))) + \
        np.random.default_rng(2).normal(0, 0.1, len(data))       # linear in the words
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = rfp.tune(data, "y", text="title", cluster="cluster", grid={"alpha": [1.0]},
                          max_steps=20, folds=3, progress=False, hidden=(4,), embedding_dim=3)
    names = [c["model"] for c in fitted.cv.configs]
    assert names.count("words") == 4
    assert fitted.cv.chosen_config["model"] == "words", fitted.cv
    assert fitted.config["model"] == "text" and fitted.config["embedding_dim"] == 1
    p = fitted.predict(data, as_numpy=True)
    assert np.mean((p - data.y) ** 2) < 0.1 * np.var(data.y)
    fitted.save(tmp_path / "words.rfp")
    assert np.array_equal(rfp.load(tmp_path / "words.rfp").predict(data, as_numpy=True), p)
    assert "ridge" in str(fitted.cv)
