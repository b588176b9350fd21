"""BitStack through Python: build, open under budgets, products, errors."""
import threading

import numpy as np
import pytest

import lowbit


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.sum((a - b) ** 2) / np.sum(b ** 2))


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    rng = np.random.default_rng(7)
    w = {"q": rng.standard_normal((96, 128)).astype(np.float32),
         "k": rng.standard_normal((64, 96)).astype(np.float32)}
    path = tmp_path_factory.mktemp("stack") / "s.lbs"
    seen = []
    lowbit.stack.build(w, path, blocks=6, rank=8, factor_share=None, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (12, 12) and len(seen) == 12
    return w, path


def test_first_block_matches_numpy_rank_k_svd(sample):
    """One block is sign(W) ⊙ (U Vᵀ) with U Vᵀ the rank-k approximation of |W|, so its error
    equals |W|'s rank-k SVD error (numpy's is optimal): within a few percent."""
    w, path = sample
    with lowbit.Stack.open(path, "1GB") as s:
        budget = s.minimum_bytes
        s.set_budget(budget)
        assert s.blocks("q") == 1
        dense_t = s.matmul("q", np.eye(128, dtype=np.float32))      # rows of I·Wᵀ = Wᵀ
        rows, cols, k, _, _ = s.tensor("q")
    a = np.abs(w["q"]).astype(np.float64)
    sv = np.linalg.svd(a, compute_uv=False)
    optimal = np.sum(sv[k:] ** 2) / np.sum(w["q"].astype(np.float64) ** 2)
    ours = rel(dense_t.T, w["q"])
    assert optimal <= ours <= optimal * 1.05 + 1e-4, (ours, optimal)


def test_error_falls_with_every_block_and_budgets_read_only_new_blocks(sample):
    w, path = sample
    x = np.random.default_rng(8).standard_normal((3, 128)).astype(np.float32)
    ref = x.astype(np.float64) @ w["q"].T.astype(np.float64)
    with lowbit.Stack.open(path, "1GB") as probe:
        minimum = probe.minimum_bytes
    with lowbit.Stack.open(path, minimum) as s:
        errors, budgets = [], []
        step = (s.total_bytes - s.minimum_bytes) // 10 + 1
        for budget in range(s.minimum_bytes, s.total_bytes + step, step):
            before = s.bytes_read
            s.set_budget(budget)
            assert s.resident_bytes <= max(budget, s.minimum_bytes)
            budgets.append((budget, s.bytes_read - before))
            errors.append((s.blocks("q"), rel(s.matmul("q", x), ref)))
        by_blocks = {}
        for b, e in errors:
            by_blocks[b] = e
        counts = sorted(by_blocks)
        assert counts[0] == 1 and counts[-1] == 6
        assert all(by_blocks[a] > by_blocks[b] for a, b in zip(counts, counts[1:]))
        read_before = s.bytes_read
        s.set_budget(s.minimum_bytes)
        assert s.bytes_read == read_before                     # shrinking reads nothing
        assert s.blocks("q") == 1 and s.blocks("k") == 1
        with pytest.raises(lowbit.LowbitError) as e:
            s.set_budget(s.minimum_bytes - 1)
        assert str(s.minimum_bytes) in e.value.message
        assert s.blocks("q") == 1


def test_budget_strings_and_errors(sample, tmp_path):
    w, path = sample
    assert lowbit.parse_size("64MB") == 64_000_000 and lowbit.parse_size("1.5KiB") == 1536
    for bad in ("lots", "-5MB", -1, "5 XB"):
        with pytest.raises(lowbit.LowbitError):
            lowbit.parse_size(bad)
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.Stack.open(path, 100)
    assert "minimum" in e.value.message
    with lowbit.Stack.open(path, "1GB") as s:
        with pytest.raises(lowbit.LowbitError):
            s.matmul("nope", np.zeros(128, np.float32))
        with pytest.raises(lowbit.LowbitError):
            s.matmul("q", np.zeros(127, np.float32))
    data = path.read_bytes()
    bad = tmp_path / "bad.lbs"
    for content in (data[:-1], data[:100], b"", data[:40] + bytes([data[40] ^ 1]) + data[41:]):
        bad.write_bytes(content)
        with pytest.raises(lowbit.LowbitError) as e:
            lowbit.Stack.open(bad, "1GB")
        assert e.value.status_name == "BAD_FORMAT"
    flipped = bytearray(data)
    flipped[-10] ^= 0x40                                        # inside the last block
    bad.write_bytes(bytes(flipped))
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.Stack.open(bad, "1GB")
    assert "checksum" in e.value.message
    with pytest.raises(lowbit.LowbitError):
        lowbit.stack.build({"odd": np.ones((4, 33), np.float32)}, tmp_path / "x.lbs")
    with pytest.raises(lowbit.LowbitError):
        lowbit.stack.build({"a": np.ones((4, 32), np.float64)}, tmp_path / "x.lbs")


def test_activation_aware_scaling_lowers_output_error(tmp_path):
    rng = np.random.default_rng(9)
    w = rng.standard_normal((64, 128)).astype(np.float32)
    scale = np.exp(rng.standard_normal(128)).astype(np.float32)       # uneven channel magnitudes
    calib = (rng.standard_normal((256, 128)) * scale).astype(np.float32)
    x = (rng.standard_normal((64, 128)) * scale).astype(np.float32)
    ref = x.astype(np.float64) @ w.T
    errs = {}
    for name, c in (("plain", None), ("aware", {"w": calib})):
        p = tmp_path / f"{name}.lbs"
        lowbit.stack.build({"w": w}, p, blocks=2, rank=4, calibration=c)
        with lowbit.Stack.open(p, "1GB") as s:
            errs[name] = rel(s.matmul("w", x), ref)
    assert errs["aware"] < errs["plain"]


def test_products_while_budget_changes(sample):
    w, path = sample
    x = np.random.default_rng(10).standard_normal(128).astype(np.float32)
    with lowbit.Stack.open(path, "1GB") as s:
        budgets = []
        valid = []
        step = (s.total_bytes - s.minimum_bytes) // 5 + 1
        for b in range(s.minimum_bytes, s.total_bytes + step, step):
            s.set_budget(b)
            budgets.append(b)
            valid.append(s.matmul("q", x))
        stop = threading.Event()

        def changer():
            i = 0
            while not stop.is_set():
                s.set_budget(budgets[i % len(budgets)])
                i += 1

        t = threading.Thread(target=changer)
        t.start()
        try:
            for _ in range(200):
                y = s.matmul("q", x)
                assert any(np.array_equal(y, v) for v in valid)
        finally:
            stop.set()
            t.join()


RSS_PROBE = """
import sys, lowbit
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
path, minimum, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = lowbit.Stack.open(path, minimum)
rss0, res0 = rss(), s.resident_bytes
s.set_budget(total)
print(rss() - rss0, s.resident_bytes - res0, s.resident_bytes)
"""


def test_resident_bytes_match_rss(tmp_path):
    """In a fresh process (so freed heap pages from other tests cannot be reused), growing the
    budget raises RSS by the reported resident bytes, within 5%."""
    import subprocess
    import sys
    rng = np.random.default_rng(11)
    w = {f"m{i}": rng.standard_normal((2048, 2048)).astype(np.float32) for i in range(2)}
    path = tmp_path / "big.lbs"
    lowbit.stack.build(w, path, blocks=8, rank=16)
    with lowbit.Stack.open(path, "1GB") as probe:
        minimum, total = probe.minimum_bytes, probe.total_bytes
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, str(path), str(minimum), str(total)],
                         capture_output=True, text=True, check=True).stdout.split()
    rss_grown, resident_grown, resident = map(int, out)
    assert resident <= total and resident_grown > 5_000_000
    assert abs(rss_grown - resident_grown) <= 0.05 * resident_grown, (rss_grown, resident_grown)
