"""Writes ggml_blocks.gguf: for every ggml tensor type lowbit reads, a tensor of random blocks
(every byte pattern is a valid block once its Float16 scales are finite) and, beside it as
"<TYPE>.expected", the Float32 values the `gguf` package (llama.cpp's own Python reader) decodes
them to. GGUFTests compares lowbit's decoding with those values bit for bit.

    python3 -m pip install gguf==0.19.0 && python3 Tests/Fixtures/make_ggml_blocks.py
"""
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

# Byte offsets of each type's Float16 scale fields within a block.
SCALES = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.Q2_K: [80, 82],
          T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208], T.IQ4_NL: [0], T.IQ4_XS: [0],
          T.TQ1_0: [52], T.TQ2_0: [64]}
ELEMENTS = 512  # two K-quant super-blocks, sixteen 32-element blocks


def random_blocks(rng, qtype):
    block_elements, block_bytes = GGML_QUANT_SIZES[qtype]
    count = ELEMENTS // block_elements
    data = rng.integers(0, 256, size=(count, block_bytes), dtype=np.uint8)
    if qtype in (T.F16, T.BF16):
        halves = data.view(np.uint16)
        exponent = np.uint16(0x7C00 if qtype == T.F16 else 0x7F80)
        halves[(halves & exponent) == exponent] &= ~np.uint16(0x4000)   # no infinities or NaNs
    for offset in SCALES.get(qtype, []):
        scale = rng.uniform(-2, 2, size=count).astype(np.float16)
        data[:, offset:offset + 2] = scale.view(np.uint8).reshape(count, 2)
    return data.reshape(1, -1)


def main():
    rng = np.random.default_rng(20261206)
    path = Path(__file__).with_name("ggml_blocks.gguf")
    writer = GGUFWriter(str(path), arch="lowbit-fixture")
    for qtype in (T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K,
                  T.Q6_K, T.IQ4_NL, T.IQ4_XS, T.TQ1_0, T.TQ2_0):
        raw = random_blocks(rng, qtype)
        expected = dequantize(raw, qtype).astype(np.float32).reshape(1, ELEMENTS)
        writer.add_tensor(qtype.name, raw, raw_dtype=qtype)
        writer.add_tensor(qtype.name + ".expected", expected)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
