"""The runner through Python, on SmolLM2-135M (fetched by scripts/fetch-model.sh)."""
import os
from pathlib import Path

import numpy as np
import pytest

import lowbit

MODEL = os.environ.get("LOWBIT_MODEL") or str(Path(__file__).resolve().parents[3] / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
pytestmark = pytest.mark.skipif(not Path(MODEL).exists(), reason="model not fetched (scripts/fetch-model.sh)")
GPL = Path("/usr/share/common-licenses/GPL-3").read_text()


def test_generate_and_perplexity_match_between_reference_and_q4_1():
    with lowbit.Model.open(MODEL, weights="q4_1") as q41:
        out = q41.generate("The capital of France is", max_tokens=3)
        assert out.startswith("The capital of France is Paris")
        assert q41.weight_bytes > 50_000_000
        with lowbit.Model.open(MODEL, weights="reference") as ref:
            a, b = ref.perplexity(GPL, ctx=512, chunks=1), q41.perplexity(GPL, ctx=512, chunks=1)
        assert 10 < a < 30 and abs(b / a - 1) < 0.01
        with pytest.raises(lowbit.LowbitError):
            q41.set_budget("64MB")                      # not a stack
        with pytest.raises(lowbit.LowbitError):
            q41.perplexity("too short", ctx=512)


def test_requantized_and_errors():
    with lowbit.Model.open(MODEL, bits=4, group_size=64, kernel="lut") as m:
        assert m.generate("Hello", max_tokens=4).startswith("Hello")
    with pytest.raises(lowbit.LowbitError):
        lowbit.Model.open(MODEL, bits=5)
    with pytest.raises(lowbit.LowbitError):
        lowbit.Model.open("/nonexistent.gguf")
    with pytest.raises(lowbit.LowbitError):
        lowbit.Model.open(MODEL, weights="fp8")
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.Model.open(__file__)
    assert e.value.status_name == "BAD_FORMAT"
