"""The real all-MiniLM-L6-v2 encoder and its content-hash vector cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowrec.encoders import Encoder, VectorCache, resolve_model_path, text_key
from knowrec.errors import ConfigError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Encoder:
    return Encoder(cache=tmp_path_factory.mktemp("enc") / "vectors.sqlite", batch_size=8)


def test_vectors_are_normalised_and_semantic(encoder: Encoder) -> None:
    v = encoder.encode(
        [
            "A space opera about rebels fighting an empire.",
            "Interstellar war film with starships and a galactic empire.",
            "A quiet romantic comedy set in a Paris bakery.",
            "",
            None,
        ],
        progress=False,
    )
    assert v.shape == (5, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-5)
    assert not v[3:].any()  # empty / missing text → zero vector
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_cache_hit_skips_the_model(encoder: Encoder, tmp_path: Path) -> None:
    texts = [f"movie number {i} about dragons" for i in range(20)]
    first = encoder.encode(texts + texts[:5], progress=False)
    before = encoder.encoded
    again = Encoder(cache=encoder.cache.path)  # a fresh process-like encoder, same cache
    second = again.encode(texts, progress=False)
    assert again.encoded == 0 and again._model is None  # no model load at all
    np.testing.assert_array_equal(first[:20], second)
    assert encoder.encode(texts, progress=False).shape == (20, 384)
    assert encoder.encoded == before


def test_cache_key_depends_on_model_and_text(tmp_path: Path) -> None:
    assert text_key("m1", "x") != text_key("m2", "x") != text_key("m1", "y")
    cache = VectorCache(tmp_path / "c.sqlite")
    cache.put_many(["k"], np.ones((1, 3), dtype=np.float32))
    assert len(cache) == 1 and cache.get_many(["k", "missing"])["k"].tolist() == [1, 1, 1]


def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a packaged model"):
        resolve_model_path(str(tmp_path / "no-such-model"))
    assert (resolve_model_path("all-MiniLM-L6-v2") / "config.json").exists()
