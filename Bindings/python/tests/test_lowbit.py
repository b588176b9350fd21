"""The Python face of lowbit: every family x weight type x N against float64, imports, files,
threads, and every bad input caught with a clear LowbitError."""
import os
import threading

import numpy as np
import pytest

import lowbit

TYPES = [1, 2, 3, 4, "ternary"]
FAMILIES = ["lut", "bitserial", "dequant", "reference", "auto"]
INT8_FAMILIES = {"lut", "bitserial", "dequant"}  # tables or activations rounded to int8


def rel_err(y, ref):
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.sum((y.astype(np.float64) - ref) ** 2) / np.sum(ref ** 2))


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("bits", TYPES)
@pytest.mark.parametrize("rows,cols,group", [(7, 96, 32), (33, 384, 128), (130, 192, 64)])
def test_every_family_matches_float64(bits, rows, cols, group):
    rng = np.random.default_rng(rows * 1000 + cols)
    w = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
    m = lowbit.quantize(w, bits=bits, group_size=group)
    wq = m.dequantize().astype(np.float64)
    for n in (1, 5, 64):
        x = rng.standard_normal((n, cols)).astype(np.float32)
        ref = x.astype(np.float64) @ wq.T
        for kernel in FAMILIES:
            family = m.auto_kernel(n) if kernel == "auto" else kernel
            bound = 5e-4 if family in INT8_FAMILIES else 1e-6
            y = m.matmul(x, kernel=kernel)
            assert y.shape == (n, rows) and y.dtype == np.float32
            assert rel_err(y, ref) <= bound, (kernel, bits, n)
        assert rel_err(m.matmul(x, kernel="dequant", act_bits=32), ref) <= 1e-6  # float activations
        assert rel_err(m.matmul(x, kernel="dequant", act_bits=16), ref) <= 2e-6  # two int8 passes
        # A vector gives a vector, equal to the first row of the batch.
        v = m.matmul(x[0], kernel="lut")
        assert v.shape == (rows,)
        np.testing.assert_allclose(v, m.matmul(x[:1], kernel="lut")[0], rtol=0, atol=0)


def test_tall_matrix_4097_rows(rng):
    w = (rng.standard_normal((4097, 128)) * 0.05).astype(np.float32)
    x = rng.standard_normal((5, 128)).astype(np.float32)
    for bits in (2, 3):
        m = lowbit.quantize(w, bits=bits, group_size=64, symmetric=True)
        ref = x.astype(np.float64) @ m.dequantize().astype(np.float64).T
        for kernel in ("lut", "bitserial", "dequant"):
            assert rel_err(m.matmul(x, kernel=kernel), ref) <= 5e-4
        assert rel_err(m.matmul(x, kernel="dequant", act_bits=32), ref) <= 1e-6


def test_bitserial_activation_bits(rng):
    w = (rng.standard_normal((40, 256)) * 0.05).astype(np.float32)
    m = lowbit.quantize(w, bits=4, group_size=64)
    x = rng.standard_normal(256).astype(np.float32)
    ref = m.dequantize().astype(np.float64) @ x.astype(np.float64)
    errs = {a: rel_err(m.matmul(x, kernel="bitserial", act_bits=a), ref) for a in (2, 4, 8)}
    assert errs[8] < errs[4] < errs[2]          # fewer activation bits, more error
    assert errs[8] <= 5e-4
    with pytest.raises(lowbit.LowbitError) as e:
        m.matmul(x, kernel="bitserial", act_bits=3)
    assert e.value.status_name == "UNSUPPORTED"


def test_auto_keeps_the_precision_asked_for(rng):
    w = (rng.standard_normal((40, 256)) * 0.05).astype(np.float32)
    m = lowbit.quantize(w, bits=2, group_size=64)
    x = rng.standard_normal(256).astype(np.float32)
    for act_bits, family in ((4, "bitserial"), (16, "dequant"), (32, "dequant")):
        assert np.array_equal(m.matmul(x, kernel="auto", act_bits=act_bits),
                              m.matmul(x, kernel=family, act_bits=act_bits))
    with pytest.raises(lowbit.LowbitError) as e:
        m.matmul(x, kernel="auto", act_bits=5)
    assert e.value.status_name == "UNSUPPORTED"


def test_quantization_error_shrinks_with_bits(rng):
    w = rng.standard_normal((32, 512)).astype(np.float32)
    errs = [rel_err(lowbit.quantize(w, bits=b, group_size=64).dequantize(), w) for b in (1, 2, 3, 4)]
    assert errs[0] < 0.4 and errs[3] < 0.012
    assert all(a > 2 * b for a, b in zip(errs, errs[1:]))
    assert rel_err(lowbit.quantize(w, bits="ternary", group_size=64).dequantize(), w) < 0.25


def test_properties_and_sizes(rng):
    w = rng.standard_normal((16, 256)).astype(np.float32)
    m = lowbit.quantize(w, bits=3, group_size=128, symmetric=True)
    assert m.shape == (16, 256) and m.bits == 3 and m.group_size == 128 and m.symmetric
    # 3 bits of codes + two float32 per group of 128.
    assert m.nbytes == 16 * 256 * 3 // 8 + 16 * 2 * 2 * 4
    t = lowbit.quantize(w, bits="ternary", group_size=64)
    assert t.bits == "ternary" and t.symmetric


def test_save_and_load_round_trip(tmp_path, rng):
    w = rng.standard_normal((9, 192)).astype(np.float32)
    for bits in TYPES:
        m = lowbit.quantize(w, bits=bits, group_size=64)
        path = tmp_path / f"m{bits}.lbm"
        m.save(path)
        back = lowbit.load(path)
        assert back.shape == m.shape and back.bits == m.bits
        np.testing.assert_array_equal(back.dequantize(), m.dequantize())
        assert path.read_bytes() == (m.save(tmp_path / "again.lbm") or (tmp_path / "again.lbm").read_bytes())


def test_corrupt_files_are_rejected(tmp_path, rng):
    m = lowbit.quantize(rng.standard_normal((9, 128)).astype(np.float32), bits=2, group_size=64)
    good = tmp_path / "good.lbm"
    m.save(good)
    data = good.read_bytes()
    bad = tmp_path / "bad.lbm"
    for name, content in [("truncated", data[:-1]), ("header only", data[:128]), ("empty", b""),
                          ("flipped", data[:200] + bytes([data[200] ^ 1]) + data[201:]),
                          ("magic", b"X" + data[1:]), ("text", b"hello world" * 20)]:
        bad.write_bytes(content)
        with pytest.raises(lowbit.LowbitError) as e:
            lowbit.load(bad)
        assert e.value.status_name == "BAD_FORMAT", name
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.load(tmp_path / "missing.lbm")
    assert e.value.status_name == "IO" and "missing.lbm" in e.value.message
    with pytest.raises(lowbit.LowbitError) as e:
        m.save(tmp_path / "no" / "such" / "dir.lbm")
    assert e.value.status_name == "IO"


def pack_gptq(q, z_stored, bits):
    """Packs codes q (rows x cols) and stored zeros (groups x rows) the GPTQ way."""
    rows, cols = q.shape
    pack = 32 // bits
    qweight = np.zeros((cols // pack, rows), dtype=np.uint32)
    for t in range(pack):
        qweight |= (q[:, t::pack].T.astype(np.uint32) << (t * bits))
    groups = z_stored.shape[0]
    qzeros = np.zeros((groups, rows // pack), dtype=np.uint32)
    for t in range(pack):
        qzeros |= (z_stored[:, t::pack].astype(np.uint32) << (t * bits))
    return qweight.view(np.int32), qzeros.view(np.int32)


@pytest.mark.parametrize("bits", [2, 4])
def test_from_gptq(bits, rng):
    rows, cols, group = 64, 256, 128
    q = rng.integers(0, 2 ** bits, (rows, cols))
    z = rng.integers(1, 2 ** bits, (cols // group, rows))
    scales = (rng.random((cols // group, rows)) * 0.1 + 0.01).astype(np.float16)
    qweight, qzeros = pack_gptq(q, z - 1, bits)  # v1 files store z - 1
    m = lowbit.from_gptq(qweight, qzeros, scales, bits=bits, group_size=group)
    expect = (q - np.repeat(z.T, group, axis=1)) * np.repeat(scales.astype(np.float32).T, group, axis=1)
    np.testing.assert_allclose(m.dequantize(), expect, rtol=1e-6, atol=1e-7)
    qweight2, qzeros2 = pack_gptq(q, z, bits)
    m2 = lowbit.from_gptq(qweight2, qzeros2, scales, bits=bits, group_size=group, zeros="v2")
    np.testing.assert_array_equal(m2.dequantize(), m.dequantize())
    x = rng.standard_normal(cols).astype(np.float32)
    ref = expect.astype(np.float64) @ x
    assert rel_err(m.matmul(x, kernel="lut"), ref) <= 5e-4
    with pytest.raises(lowbit.LowbitError):
        lowbit.from_gptq(qweight, qzeros[:, :1].copy(), scales, bits=bits, group_size=group)
    with pytest.raises(lowbit.LowbitError):
        lowbit.from_gptq(qweight, qzeros, scales, bits=3, group_size=group)


def test_from_ternary(rng):
    t = rng.integers(-1, 2, (6, 128)).astype(np.int8)
    m = lowbit.from_ternary(t, np.float32(0.5), group_size=64)
    np.testing.assert_array_equal(m.dequantize(), 0.5 * t)
    per_row = np.arange(1, 7, dtype=np.float32)
    np.testing.assert_array_equal(lowbit.from_ternary(t, per_row, group_size=64).dequantize(), per_row[:, None] * t)
    bad = t.copy()
    bad[2, 3] = 3
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.from_ternary(bad, np.float32(1), group_size=64)
    assert "[2, 3]" in e.value.message


def test_threads_do_not_change_results(rng):
    w = rng.standard_normal((301, 256)).astype(np.float32)
    m = lowbit.quantize(w, bits=4, group_size=64)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    try:
        lowbit.set_threads(1)
        assert lowbit.get_threads() == 1
        one = {k: m.matmul(x, kernel=k) for k in ("lut", "bitserial", "dequant")}
        lowbit.set_threads(2)
        for k, y in one.items():
            np.testing.assert_array_equal(m.matmul(x, kernel=k), y)
    finally:
        lowbit.set_threads(0)
    with pytest.raises(lowbit.LowbitError):
        lowbit.set_threads(-1)


def test_concurrent_products_on_one_matrix(rng):
    w = rng.standard_normal((200, 512)).astype(np.float32)
    m = lowbit.quantize(w, bits=2, group_size=128)
    xs = [rng.standard_normal((2, 512)).astype(np.float32) for _ in range(6)]
    expected = [m.matmul(x, kernel="lut") for x in xs]
    results = {}

    def worker(i):
        for j in range(20):
            k = (i + j) % len(xs)
            results.setdefault(i, []).append((k, m.matmul(xs[k], kernel="lut")))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(v) for v in results.values()) == 80
    for v in results.values():
        for k, y in v:
            np.testing.assert_array_equal(y, expected[k])


# ---- bad input: caught in Python before C, or by the library, never a crash ------------------

def test_bad_arrays_raise_before_any_call(rng):
    w = rng.standard_normal((8, 64)).astype(np.float32)
    m = lowbit.quantize(w, bits=2, group_size=32)
    with pytest.raises(lowbit.LowbitError):
        lowbit.quantize(w.astype(np.float64))                       # dtype
    with pytest.raises(TypeError):
        lowbit.quantize(w.tolist())                                 # not an array
    with pytest.raises(lowbit.LowbitError):
        lowbit.quantize(w[:, ::2])                                  # not contiguous
    with pytest.raises(lowbit.LowbitError):
        lowbit.quantize(w.reshape(-1))                              # 1-D
    with pytest.raises(lowbit.LowbitError):
        m.matmul(np.zeros(63, np.float32))                          # wrong width
    with pytest.raises(lowbit.LowbitError):
        m.matmul(np.zeros((4, 128), np.float32)[:, ::2])            # not contiguous
    with pytest.raises(lowbit.LowbitError):
        m.matmul(np.zeros(64, np.float64))                          # dtype
    with pytest.raises(lowbit.LowbitError):
        m.matmul(np.zeros((0, 64), np.float32))                     # no rows
    with pytest.raises(lowbit.LowbitError):
        m.matmul(np.zeros(64, np.float32), kernel="fast")           # unknown kernel
    with pytest.raises(lowbit.LowbitError):
        m.matmul(np.zeros(64, np.float32), out=np.zeros(7, np.float32))


@pytest.mark.parametrize("kwargs,status", [
    (dict(bits=5), "UNSUPPORTED"), (dict(bits=0), "UNSUPPORTED"), (dict(bits="two"), "UNSUPPORTED"),
    (dict(group_size=48), "UNSUPPORTED"), (dict(group_size=128), "INVALID_ARGUMENT"),
])
def test_bad_quantization_options(kwargs, status):
    w = np.ones((4, 96), np.float32)
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.quantize(w, **kwargs)
    assert e.value.status_name == status and e.value.message


def test_library_errors_carry_messages():
    w = np.ones((3, 4095), np.float32)
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.quantize(w, bits=4, group_size=128)
    assert e.value.status == 2 and "4095" in e.value.message and "128" in e.value.message
    nan = np.ones((2, 64), np.float32)
    nan[1, 5] = np.nan
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.quantize(nan, bits=2, group_size=64)
    assert "[1, 5]" in e.value.message
    m = lowbit.quantize(np.ones((2, 64), np.float32), bits=2, group_size=64)
    x = np.ones(64, np.float32)
    x[3] = np.inf
    with pytest.raises(lowbit.LowbitError):
        m.matmul(x)


def test_version_and_tier():
    from lowbit._library import lib
    assert lowbit.__version__ == lib.lowbit_version_string().decode()
    assert lowbit.simd_tier() in ("portable", "avx2", "avx512")
    # scripts/test.sh runs these tests once per tier this CPU has, through LOWBIT_SIMD.
    forced = os.environ.get("LOWBIT_SIMD")
    if forced:
        assert lowbit.simd_tier() == forced


def test_c_level_nulls_and_short_buffers():
    """The raw C calls, as a C program would make them, through ctypes."""
    import ctypes
    from lowbit._library import lib
    fp = ctypes.POINTER(ctypes.c_float)
    h = ctypes.c_void_p()
    w = np.ones((2, 64), np.float32)
    wp = w.ctypes.data_as(fp)
    assert lib.lowbit_matrix_quantize(None, 128, 2, 64, 2, 64, 0, ctypes.byref(h)) == 1
    assert lib.lowbit_matrix_quantize(wp, 128, 2, 64, 2, 64, 0, None) == 1
    assert lib.lowbit_matrix_quantize(wp, 127, 2, 64, 2, 64, 0, ctypes.byref(h)) == 4   # short buffer
    assert lib.lowbit_matrix_quantize(wp, 128, -2, 64, 2, 64, 0, ctypes.byref(h)) == 2  # negative size
    assert lib.lowbit_matrix_quantize(wp, 128, 1 << 40, 1 << 40, 2, 64, 0, ctypes.byref(h)) == 5  # overflow
    assert lib.lowbit_matrix_quantize(wp, 128, 2, 64, 2, 64, 8, ctypes.byref(h)) == 2   # unknown flag
    assert h.value is None                                                               # nothing made
    assert lib.lowbit_matrix_quantize(wp, 128, 2, 64, 2, 64, 0, ctypes.byref(h)) == 0
    x = np.ones(64, np.float32)
    y = np.full(2, 7, np.float32)
    xp, yp = x.ctypes.data_as(fp), y.ctypes.data_as(fp)
    assert lib.lowbit_matrix_matmul(None, xp, 64, 1, yp, 2, 0, 0) == 1
    assert lib.lowbit_matrix_matmul(h, None, 64, 1, yp, 2, 0, 0) == 1
    assert lib.lowbit_matrix_matmul(h, xp, 63, 1, yp, 2, 0, 0) == 4
    assert lib.lowbit_matrix_matmul(h, xp, 64, 1, yp, 1, 0, 0) == 4
    assert lib.lowbit_matrix_matmul(h, xp, 64, 0, yp, 2, 0, 0) == 2
    assert lib.lowbit_matrix_matmul(h, xp, 64, 1, yp, 2, 17, 0) == 2
    assert b"17" in lib.lowbit_last_error()
    assert list(y) == [7, 7]                                                             # untouched
    assert lib.lowbit_matrix_nbytes(h, None) == 1
    assert lib.lowbit_matrix_save(h, None) == 1
    assert lib.lowbit_matrix_load(None, ctypes.byref(h)) == 1
    assert lib.lowbit_status_string(12345) == b"unknown status code"
    lib.lowbit_matrix_free(h)
    lib.lowbit_matrix_free(None)


def test_auto_is_measured_and_calibration_round_trips(tmp_path, rng):
    m = lowbit.quantize(rng.standard_normal((96, 256)).astype(np.float32), bits=4, group_size=64)
    choice = m.auto_kernel(1)
    assert choice in ("lut", "dequant") and m.auto_kernel(1) == choice
    x = rng.standard_normal(256).astype(np.float32)
    np.testing.assert_array_equal(m.matmul(x, kernel="auto"), m.matmul(x, kernel=choice))
    path = tmp_path / "calibration.txt"
    lowbit.calibration_save(path)
    assert "96 256 64 4 1" in path.read_text()
    lowbit.calibration_load(path)
    path.write_text("96 256 64 4 1 x fastest\n")
    with pytest.raises(lowbit.LowbitError) as e:
        lowbit.calibration_load(path)
    assert e.value.status_name == "BAD_FORMAT"


@pytest.mark.parametrize("bits", [3, 4])
def test_mixed_data_types(bits, tmp_path):
    rng = np.random.default_rng(77 + bits)
    w = (rng.standard_normal((40, 256)) * 0.05).astype(np.float32)
    m = lowbit.quantize(w, bits=bits, group_size=128, mixed=True)
    assert m.mixed and m.bits == bits
    plain = lowbit.quantize(w, bits=bits, group_size=128)
    wq = m.dequantize().astype(np.float64)
    # Per group the best of int and float grids: never worse than the integer grid alone.
    assert np.sum((wq - w) ** 2) < np.sum((plain.dequantize() - w) ** 2)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    ref = x.astype(np.float64) @ wq.T
    for kernel in ["lut", "bitserial", "dequant", "auto"]:  # value codes of 4 (mixed3) or 5 bits (mixed4)
        assert rel_err(m.matmul(x, kernel=kernel), ref) <= 5e-4, kernel
    path = str(tmp_path / "mixed.lbm")
    m.save(path)
    back = lowbit.load(path)
    assert back.mixed and np.array_equal(back.dequantize(), m.dequantize())
    with pytest.raises(lowbit.ArgumentError):
        lowbit.quantize(w, bits=2, mixed=True)


def test_files_of_the_wrong_kind_are_refused_without_blocking(tmp_path):
    """A FIFO would block a plain open forever; a directory or device is no file either."""
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in [fifo, tmp_path, "/dev/zero"]:
        for load in [lowbit.load, lowbit.calibration_load, lambda p: lowbit.stack.Stack.open(p, "1GB")]:
            with pytest.raises(lowbit.LowbitError) as error:
                load(str(path))
            assert error.value.status_name == "IO"


def test_malformed_numbers_in_files_are_format_errors(tmp_path):
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("1 1 32 99999999999 1 1 lut\n")
    with pytest.raises(lowbit.LowbitError) as error:
        lowbit.calibration_load(str(calibration))
    assert error.value.status_name == "BAD_FORMAT"
    # A 128-byte matrix header announcing 65536 x 65536: refused on its length, at once.
    w = lowbit.quantize(np.ones((1, 128), np.float32), bits=4)
    path = tmp_path / "m.lbm"
    w.save(str(path))
    header = bytearray(path.read_bytes()[:128])
    header[16:32] = (65536).to_bytes(8, "little") * 2
    path.write_bytes(bytes(header))
    with pytest.raises(lowbit.LowbitError) as error:
        lowbit.load(str(path))
    assert error.value.status_name == "BAD_FORMAT"


def test_weights_that_overflow_quantization_are_refused():
    w = np.full((2, 64), 0.5, np.float32)
    w[0, 5] = 3e38
    with pytest.raises(lowbit.LowbitError) as error:
        lowbit.quantize(w, bits=2, group_size=32)
    assert error.value.status_name == "INVALID_ARGUMENT" and "2^60" in error.value.message
