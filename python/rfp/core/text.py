"""Text columns as inputs: a vocabulary trained on the fit's own rows, and
token ids with masks, the clusters x observations x tokens batch of the
method (layout.py gathers the leading observation axis into clusters; the
token axis rides along).

A ``TextEncoder`` builds a vocabulary of words (Hugging Face ``tokenizers``:
its BERT normaliser and pre-tokeniser, and its word-level model) from the
text columns of the rows it is given, locally: nothing is downloaded.  Text
is lower-cased, accents are stripped and punctuation is split off.  A word
enters the vocabulary only if it appears in at least ``word_clusters``
clusters (default 2): a word of a single cluster identifies that cluster,
and all a model can learn from it is that cluster's effect, which does not
carry to new clusters (the cluster problem of the method, in words).  Of
those, the ``vocab_size`` - 2 most frequent are kept (ties by spelling);
other words become ``[UNK]`` (id 1), and id 0 is the padding.  Whole words
rather than WordPiece or BPE subwords: their trainers break ties between
equally frequent pieces in hash order, so the same rows gave a different
vocabulary from one run to the next, and a fit must be reproducible.
``encode`` returns

    tokens : int32 (n, C, L)   token ids of C text columns, L tokens each
    mask   : float (n, C, L)   1 for a real token, 0 for padding

where L is the longest encoded training row, capped at ``max_tokens``
(longer texts keep their first L tokens).  The model pools each column's
tokens with the mask (``models.text_bag``), so padding never changes a
prediction.  The encoder is stored inside a model file as JSON (the
tokenizer's own serialisation): no pickle.
"""
from __future__ import annotations

import json

import numpy as np

PAD, UNK = "[PAD]", "[UNK]"


def _tokenizers():
    try:
        import tokenizers
    except ImportError:   # pragma: no cover - a dependency of the package
        raise ImportError("text columns need the 'tokenizers' package: pip install tokenizers") \
            from None
    return tokenizers


class TextEncoder:
    """Text columns -> token ids and masks with one vocabulary."""

    def __init__(self, tokenizer, columns: list, length: int):
        self.tokenizer = tokenizer
        self.columns = list(columns)
        self.length = int(length)

    @classmethod
    def fit(cls, texts: dict, vocab_size: int = 2000, max_tokens: int = 32, cluster=None,
            word_clusters: int = 2) -> "TextEncoder":
        """The vocabulary of ``texts`` (column name -> list of str): words
        found in at least ``word_clusters`` distinct values of ``cluster``
        (one per row; None: every row its own cluster), the ``vocab_size``
        - 2 most frequent of them."""
        tk = _tokenizers()
        normalizer = tk.normalizers.BertNormalizer(lowercase=True)
        splitter = tk.pre_tokenizers.BertPreTokenizer()
        rows = len(next(iter(texts.values())))
        cluster = np.arange(rows) if cluster is None else np.asarray(cluster)
        count, seen, longest = {}, {}, 1
        for col in texts.values():
            for text, c in zip(col, cluster):
                split = splitter.pre_tokenize_str(normalizer.normalize_str(text))
                longest = max(longest, len(split))   # one token per word
                for word, _ in split:
                    count[word] = count.get(word, 0) + 1
                    seen.setdefault(word, set()).add(c)
        words = sorted((w for w in count if len(seen[w]) >= word_clusters),
                       key=lambda w: (-count[w], w))[:max(int(vocab_size) - 2, 0)]
        vocab = {PAD: 0, UNK: 1, **{w: i + 2 for i, w in enumerate(words)}}
        tokenizer = tk.Tokenizer(tk.models.WordLevel(vocab=vocab, unk_token=UNK))
        tokenizer.normalizer = normalizer
        tokenizer.pre_tokenizer = splitter
        return cls(tokenizer, list(texts), max(1, min(int(max_tokens), longest)))

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def encode(self, texts: dict) -> dict:
        """``{"tokens", "mask"}`` for the encoder's columns of ``texts``."""
        n = len(texts[self.columns[0]])
        tokens = np.zeros((n, len(self.columns), self.length), dtype=np.int32)
        mask = np.zeros(tokens.shape)
        for j, name in enumerate(self.columns):
            for i, e in enumerate(self.tokenizer.encode_batch(list(texts[name]))):
                ids = e.ids[:self.length]
                tokens[i, j, :len(ids)] = ids
                mask[i, j, :len(ids)] = 1.0
        return {"tokens": tokens, "mask": mask}

    def tokens(self, text: str) -> list:
        """The tokens one text is split into (for reading a vocabulary)."""
        return self.tokenizer.encode(text).tokens

    def words(self) -> list:
        """The vocabulary, ordered by id."""
        vocab = self.tokenizer.get_vocab()
        return sorted(vocab, key=vocab.get)

    def nearest(self, embedding, word: str, n: int = 5) -> list:
        """The ``n`` words whose rows of ``embedding`` (the text model's
        table, one row per token id) are closest to ``word``'s by cosine
        similarity: [(word, similarity), ...] (padding and [UNK] left out)."""
        ids = self.tokenizer.encode(word).ids
        if len(ids) != 1 or ids[0] < 2:
            raise ValueError(f"{word!r} is not one word of the vocabulary (words that occur in "
                             f"fewer than word_clusters clusters are not in it)")
        table = np.asarray(embedding, dtype=float)[:self.vocab_size]
        unit = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
        sims = unit @ unit[ids[0]]
        sims[[0, 1, ids[0]]] = -np.inf
        words = self.words()
        best = np.argsort(-sims, kind="stable")[:n]
        return [(words[i], float(sims[i])) for i in best]

    def to_json(self) -> str:
        return json.dumps({"tokenizer": self.tokenizer.to_str(), "columns": self.columns,
                           "length": self.length})

    @classmethod
    def from_json(cls, text: str) -> "TextEncoder":
        d = json.loads(text)
        tokenizer = _tokenizers().Tokenizer.from_str(d["tokenizer"])
        return cls(tokenizer, d["columns"], d["length"])

    def __repr__(self):
        return (f"<rfp text encoder: columns {self.columns}, {self.vocab_size} tokens, "
                f"{self.length} per text>")
