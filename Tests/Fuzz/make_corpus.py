#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora under Tests/Fuzz/Corpus/<target>/: small valid files of
each format (and a few near misses), from which libFuzzer mutates. Run from the repository root
with the lowbit tool built (.build/release/lowbit-cli makes the stack seeds); the output is
committed, so this runs only when a format changes."""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "Tests", "Fuzz", "Corpus")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---- GGUF -------------------------------------------------------------------------------------

def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_value(kind, value):
    if kind == "str":
        return struct.pack("<I", 8) + gguf_string(value)
    if kind == "u32":
        return struct.pack("<II", 4, value)
    if kind == "f32":
        return struct.pack("<If", 6, value)
    if kind == "bool":
        return struct.pack("<IB", 7, value)
    if kind == "strs":
        return struct.pack("<IIQ", 9, 8, len(value)) + b"".join(gguf_string(s) for s in value)
    if kind == "f32s":
        return struct.pack("<IIQ", 9, 6, len(value)) + b"".join(struct.pack("<f", v) for v in value)
    if kind == "i32s":
        return struct.pack("<IIQ", 9, 5, len(value)) + b"".join(struct.pack("<i", v) for v in value)
    raise ValueError(kind)


def gguf(metadata, tensors, alignment=32):
    """tensors: (name, dims, ggml type, bytes)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, (kind, value) in metadata.items():
        out += gguf_string(key) + gguf_value(kind, value)
    offset = 0
    for name, dims, kind, data in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", kind, offset)
        offset = (offset + len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    for _, _, _, data in tensors:
        out += data + b"\0" * (-len(data) % alignment)
    return out


def gguf_seeds():
    byte_tokens = [chr(c) for c in range(33, 127)] + ["Ġ", "Ċ"]
    tokens = byte_tokens + ["He", "ll", "Hell", "Hello", "<|im_start|>", "<|im_end|>", ""]
    types = [1] * len(byte_tokens) + [1, 1, 1, 1, 3, 3, 3]
    metadata = {
        "general.architecture": ("str", "llama"),
        "llama.block_count": ("u32", 1),
        "llama.embedding_length": ("u32", 32),
        "llama.feed_forward_length": ("u32", 64),
        "llama.attention.head_count": ("u32", 2),
        "llama.context_length": ("u32", 2048),
        "llama.attention.layer_norm_rms_epsilon": ("f32", 1e-5),
        "tokenizer.ggml.model": ("str", "gpt2"),
        "tokenizer.ggml.pre": ("str", "smollm"),
        "tokenizer.ggml.tokens": ("strs", tokens),
        "tokenizer.ggml.token_type": ("i32s", types),
        "tokenizer.ggml.merges": ("strs", ["H e", "l l", "He ll", "Hell o"]),
        "tokenizer.ggml.bos_token_id": ("u32", len(byte_tokens) + 4),
        "tokenizer.ggml.add_bos_token": ("bool", 1),
    }
    rng = np.random.default_rng(1)
    f32 = rng.standard_normal(64).astype("<f4").tobytes()
    f16 = rng.standard_normal(64).astype("<f2").tobytes()
    q4_0 = b"".join(struct.pack("<e", 0.1) + bytes(rng.integers(0, 256, 16, dtype=np.uint8)) for _ in range(2))
    q4_1 = b"".join(struct.pack("<ee", 0.1, -0.5) + bytes(rng.integers(0, 256, 16, dtype=np.uint8)) for _ in range(2))
    q8_0 = b"".join(struct.pack("<e", 0.01) + bytes(rng.integers(0, 256, 32, dtype=np.uint8)) for _ in range(2))
    tensors = [("output_norm.weight", [32], 0, f32[:128]), ("blk.0.attn_q.weight", [32, 2], 0, f32),
               ("blk.0.attn_k.weight", [32, 2], 1, f16[:128]), ("blk.0.ffn_up.weight", [32, 2], 2, q4_0),
               ("blk.0.ffn_down.weight", [32, 2], 3, q4_1), ("token_embd.weight", [32, 2], 8, q8_0)]
    write("gguf", "llama-tiny.gguf", gguf(metadata, tensors))
    # A whole one-layer model (width 32, feed-forward 64) in the block types the reader takes.
    def q8_0(rows, cols):
        return b"".join(struct.pack("<e", 0.01) + bytes(rng.integers(0, 256, 32, dtype=np.uint8))
                        for _ in range(rows * cols // 32))

    def q4_0(rows, cols):
        return b"".join(struct.pack("<e", 0.02) + bytes(rng.integers(0, 256, 16, dtype=np.uint8))
                        for _ in range(rows * cols // 32))

    ones = np.ones(32, dtype="<f4").tobytes()
    model = [("token_embd.weight", [32, len(tokens)], 8, q8_0(len(tokens), 32)),
             ("blk.0.attn_norm.weight", [32], 0, ones), ("blk.0.ffn_norm.weight", [32], 0, ones),
             ("output_norm.weight", [32], 0, ones)]
    for name in ["attn_q", "attn_k", "attn_v", "attn_output"]:
        model.append((f"blk.0.{name}.weight", [32, 32], 2, q4_0(32, 32)))
    model += [("blk.0.ffn_gate.weight", [32, 64], 2, q4_0(64, 32)),
              ("blk.0.ffn_up.weight", [32, 64], 1, rng.standard_normal(64 * 32).astype("<f2").tobytes()),
              ("blk.0.ffn_down.weight", [64, 32], 8, q8_0(32, 64))]
    write("gguf", "llama-complete.gguf", gguf(metadata, model))
    # The same model as a lowbit model file: attn_q a 4-bit matrix with input scales, ffn_gate a 2-bit one.
    lowbit = [t for t in model if t[0] not in ("blk.0.attn_q.weight", "blk.0.ffn_gate.weight")]
    lowbit += [("blk.0.attn_q.lowbit", [len(m := matrix_file(32, 32, 32, 4, 4, seed=5))], 24, m),
               ("blk.0.attn_q.input_scales", [32], 0, np.full(32, 0.5, dtype="<f4").tobytes()),
               ("blk.0.ffn_gate.lowbit", [len(g := matrix_file(64, 32, 32, 2, 2, seed=6))], 24, g)]
    write("gguf", "llama-lowbit.gguf", gguf({**metadata, "lowbit.model.version": ("u32", 1)}, lowbit))
    # An elastic model file of three levels: attn_q a ladder of a 2-bit and a 4-bit rung, ffn_gate of one.
    elastic = [t for t in model if t[0] not in ("blk.0.attn_q.weight", "blk.0.ffn_gate.weight")]
    elastic += [("blk.0.attn_q.lowbit.0", [len(a := matrix_file(32, 32, 32, 2, 2, seed=7, half=True))], 24, a),
                ("blk.0.attn_q.lowbit.1", [len(b := matrix_file(32, 32, 32, 4, 4, seed=8, half=True))], 24, b),
                ("blk.0.attn_q.input_scales.1", [32], 0, np.full(32, 0.5, dtype="<f4").tobytes()),
                ("blk.0.attn_q.levels", [3], 24, bytes([0, 0, 1])),
                ("blk.0.ffn_gate.lowbit.0", [len(h := matrix_file(64, 32, 32, 2, 2, seed=6, half=True))], 24, h),
                ("blk.0.ffn_gate.levels", [3], 24, bytes([0, 0, 0]))]
    write("gguf", "llama-elastic.gguf",
          gguf({**metadata, "lowbit.model.version": ("u32", 1), "lowbit.model.levels": ("u32", 3)}, elastic))
    write("gguf", "no-tensors.gguf", gguf({"general.alignment": ("u32", 64)}, []))
    write("gguf", "tokenizer-only.gguf", gguf(metadata, []))
    write("gguf", "tokenizer-sentencepiece.gguf", gguf(sentencepiece_metadata(), []))


def sentencepiece_metadata():
    """A SentencePiece vocabulary as Llama 2's file holds one: <unk> <s> </s>, the 256 byte
    tokens, and pieces with scores. The tokenizer target fuzzes text through it too."""
    pieces = [("\u2581", -10), ("H", -11), ("e", -12), ("l", -13), ("o", -14), ("He", -3), ("ll", -2),
              ("Hell", -1.5), ("Hello", -1), ("\u2581Hello", -0.5), ("\u2581w", -4), ("<|im_start|>", 0)]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [p for p, _ in pieces]
    return {
        "general.architecture": ("str", "llama"),
        "tokenizer.ggml.model": ("str", "llama"),
        "tokenizer.ggml.tokens": ("strs", tokens),
        "tokenizer.ggml.scores": ("f32s", [0.0] * 259 + [float(v) for _, v in pieces]),
        "tokenizer.ggml.token_type": ("i32s", [2, 3, 3] + [6] * 256 + [1] * (len(pieces) - 1) + [4]),
        "tokenizer.ggml.bos_token_id": ("u32", 1),
        "tokenizer.ggml.eos_token_id": ("u32", 2),
        "tokenizer.ggml.unknown_token_id": ("u32", 0),
        "tokenizer.ggml.add_space_prefix": ("bool", 1),
    }


# ---- matrix files -----------------------------------------------------------------------------

def matrix_file(rows, cols, group, type_code, bits, symmetric=False, mixed=False, seed=0, half=False):
    rng = np.random.default_rng(seed)
    groups = rows * (cols // group)
    codes = bytes(rng.integers(0, 256, groups * bits * group // 8, dtype=np.uint8))
    if type_code == 158:  # ternary codes are 0...2: clear the high plane where the low one is set
        planes = bytearray(codes)
        for g in range(groups):
            base = g * 2 * group // 8
            for k in range(group // 8):
                planes[base + group // 8 + k] &= ~planes[base + k] & 0xFF
        codes = bytes(planes)
    if mixed:
        codes += bytes(rng.integers(0, 2, groups, dtype=np.uint8))
    # half: group parameters that are exact Float16 values, as an elastic model's rungs must be.
    exact = (lambda v: v.astype("<f2")) if half else (lambda v: v)
    scales = exact(rng.random(groups) * 0.1).astype("<f4").tobytes()
    offsets = exact(rng.random(groups) * -0.5).astype("<f4").tobytes()
    sections = [codes, scales, offsets]
    pad = lambda n: (n + 63) // 64 * 64
    offsets_ = []
    end = 128
    for s in sections:
        offsets_.append(end)
        end = pad(end + len(s))
    header = bytearray(128)
    header[0:8] = b"LOWBITMX"
    struct.pack_into("<IIQQIIII", header, 8, 1, 128, rows, cols, group, type_code, 1 if symmetric else 0, 0)
    for i, s in enumerate(sections):
        struct.pack_into("<QQII", header, 48 + 24 * i, offsets_[i], len(s), zlib.crc32(s), 0)
    struct.pack_into("<I", header, 120, zlib.crc32(bytes(header[:120])))
    out = bytes(header)
    for i, s in enumerate(sections):
        out += b"\0" * (offsets_[i] - len(out)) + s
    return out


def matrix_seeds():
    write("matrix", "int2-g32.lbm", matrix_file(3, 64, 32, 2, 2))
    write("matrix", "int4-g64-symmetric.lbm", matrix_file(2, 128, 64, 4, 4, symmetric=True, seed=1))
    write("matrix", "int1-g128.lbm", matrix_file(1, 128, 128, 1, 1, seed=2))
    write("matrix", "ternary-g32.lbm", matrix_file(2, 32, 32, 158, 2, symmetric=True, seed=3))
    write("matrix", "mixed3-g32.lbm", matrix_file(2, 64, 32, 203, 3, mixed=True, seed=4))


# ---- stack files ------------------------------------------------------------------------------

def stack_seeds():
    tool = os.path.join(ROOT, ".build", "release", "lowbit-cli")
    folder = os.path.join(CORPUS, "stack")
    os.makedirs(folder, exist_ok=True)
    for name, shapes, blocks, rank in [("two-tensors", "16x32,8x64", 2, 2), ("one-tensor", "5x32", 3, 1)]:
        subprocess.run([tool, "stack", "build", os.path.join(folder, name + ".lbs"), "--random", shapes,
                        "--blocks", str(blocks), "--rank", str(rank)], check=True, stdout=subprocess.DEVNULL)


# ---- calibration, npy, tokenizer text ---------------------------------------------------------

def text_seeds():
    write("calibration", "two-lines.txt",
          b"# lowbit auto-kernel calibration: rows cols group_size type n_bucket threads family\n"
          b"4096 4096 128 2 1 2 lut\n576 1536 64 4 32 1 dequant\n")
    write("calibration", "huge-number.txt", b"1 1 32 99999999999 1 1 lut\n")
    for name, array in [("float32-3x4.npy", np.arange(12, dtype="<f4").reshape(3, 4)),
                        ("float32-1x1.npy", np.ones((1, 1), dtype="<f4"))]:
        path = os.path.join(CORPUS, "npy", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path, array)
    samples = {
        "chat.txt": "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
        "digits.txt": "In 1969, 3 astronauts flew 384400 km.",
        "spaces.txt": "a  b\t\tc \n\n  d   ",
        "unicode.txt": "naïve café — 東京 🚀 ﬁ Ω≈ç√",
        "contractions.txt": "I'm sure they'll say it's what we'd've done, don't you?",
        "long-word.txt": "x" * 3000,
    }
    for name, text in samples.items():
        write("tokenizer", name, text.encode())
    write("tokenizer", "invalid-utf8.bin", b"\xff\xfe abc \xc3\x28 \xe2\x82")


if __name__ == "__main__":
    gguf_seeds()
    matrix_seeds()
    stack_seeds()
    text_seeds()
    print("seed corpora written under", os.path.relpath(CORPUS, os.getcwd()), file=sys.stderr)
