"""Elastic model files through Python, on the fuzz corpus's one-layer model (seconds)."""
import threading
from pathlib import Path

import pytest

import lowbit

CORPUS = Path(__file__).resolve().parents[3] / "Tests/Fuzz/Corpus/gguf"
TINY = str(CORPUS / "llama-complete.gguf")
TEXT = "Hello, He said. Hell! " * 96


@pytest.fixture(scope="module")
def elastic():
    """The corpus's elastic seed: three levels, attn_q at 2 bits in the first two, 4 in the last."""
    return CORPUS / "llama-elastic.gguf"


def test_quantize_elastic_writes_a_model_that_opens(tmp_path):
    out = tmp_path / "elastic.gguf"
    # Sizes that fit at every tier (without packed layouts, the portable tier's are larger).
    lowbit.Model.quantize_elastic(TINY, out, min_size=9000, max_size=14000, calibration=TEXT, levels=4)
    with lowbit.Model.open(out, budget="14KB") as m:
        assert 6000 < m.weight_bytes <= 14000
        assert m.generate("He", max_tokens=2)


def test_budgets_pick_levels_and_a_refused_budget_changes_nothing(elastic):
    with lowbit.Model.open(elastic, kernel="dequant") as m:
        top = m.weight_bytes
        m.set_budget(top - 1)
        lower = m.weight_bytes
        assert lower <= top - 1
        text = m.generate("He", max_tokens=4)
        with pytest.raises(lowbit.LowbitError, match="below the smallest level"):
            m.set_budget(1000)
        assert m.weight_bytes == lower and m.generate("He", max_tokens=4) == text
        m.set_budget("1MB")
        assert m.weight_bytes == top
    with lowbit.Model.open(elastic, kernel="dequant", budget=lower) as m:
        assert m.weight_bytes == lower
    with pytest.raises(lowbit.LowbitError, match="below the smallest level"):
        lowbit.Model.open(elastic, budget=1000)
    with pytest.raises(lowbit.LowbitError, match="elastic model file"):
        lowbit.Model.open(TINY, budget="1MB")
    with pytest.raises(lowbit.ArgumentError):
        lowbit.Model.open(elastic, weights="reference", budget="1MB")


def test_budget_changes_while_another_thread_generates(elastic):
    with lowbit.Model.open(elastic) as m:
        top = m.weight_bytes
        errors = []

        def generate():
            try:
                for _ in range(20):
                    m.generate("Hello", max_tokens=8)
            except Exception as e:  # noqa: BLE001 - any failure is the test's
                errors.append(e)

        worker = threading.Thread(target=generate)
        worker.start()
        for i in range(40):
            m.set_budget(top if i % 2 else top - 1)
        worker.join()
        assert not errors


@pytest.mark.parametrize("bad", [dict(min_size=14000, max_size=9000), dict(levels=0), dict(calibration=b"bytes")])
def test_bad_elastic_requests_are_refused(tmp_path, bad):
    args = dict(min_size=9000, max_size=14000, calibration=TEXT) | bad
    with pytest.raises(lowbit.ArgumentError):
        lowbit.Model.quantize_elastic(TINY, tmp_path / "x.gguf", **args)
    with pytest.raises(lowbit.LowbitError, match="calibration text of at least"):
        lowbit.Model.quantize_elastic(TINY, tmp_path / "x.gguf", min_size=9000, max_size=14000,
                                      calibration="Hello, He said. " * 20)
    assert not (tmp_path / "x.gguf").exists()
