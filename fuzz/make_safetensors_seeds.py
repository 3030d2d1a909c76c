#!/usr/bin/env python3
"""Writes the seeds of the `safetensors` fuzz target to seeds/safetensors/.

The files are for the target's network (fuzz_targets/safetensors.rs):

    input(2, 5, 5)
    conv(3, 3, p = 1) bn relu
    block: residual(relu) { conv(3, 3, p = 1, bias = false) norm: bn }
    pool(2, 1)
    fc(4) softmax

so its tensors are, with PyTorch's names and layouts:

    0.weight [3, 2, 3, 3], 0.bias [3]                       conv, F32
    1.{weight,bias,running_mean,running_var} [3]            bn, F32
    1.num_batches_tracked []                                bn counter, I64
    block.0.weight [3, 3, 3, 3]                             conv without bias
    block.norm.{weight,bias,running_mean,running_var} [3]
    block.norm.num_batches_tracked []
    5.weight [4, 48], 5.bias [4]                            fc

One valid file as PyTorch writes it, and near misses that must each be an
error (or, for a file without counters, load with counters of 0).
Run from fuzz/: `python3 make_safetensors_seeds.py`.
"""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "seeds", "safetensors")

BN = ["weight", "bias", "running_mean", "running_var"]


def f32(values):
    return b"".join(struct.pack("<f", v) for v in values)


def f16(values):
    return b"".join(struct.pack("<e", v) for v in values)


def i64(value):
    return struct.pack("<q", value)


def values(n, seed):
    """n small deterministic values in [-0.5, 0.5)."""
    return [((i * 37 + seed * 11) % 23) / 23.0 - 0.5 for i in range(n)]


def bn_tensors(prefix, seed, counter=True):
    tensors = [
        (f"{prefix}.weight", "F32", [3], f32([1.0, 0.5, 2.0])),
        (f"{prefix}.bias", "F32", [3], f32(values(3, seed))),
        (f"{prefix}.running_mean", "F32", [3], f32(values(3, seed + 1))),
        # Running variances are positive, as training leaves them.
        (f"{prefix}.running_var", "F32", [3], f32([0.25, 1.0, 4.0])),
    ]
    if counter:
        tensors.append((f"{prefix}.num_batches_tracked", "I64", [], i64(12)))
    return tensors


def valid(counter=True):
    return (
        [
            ("0.weight", "F32", [3, 2, 3, 3], f32(values(54, 1))),
            ("0.bias", "F32", [3], f32(values(3, 2))),
        ]
        + bn_tensors("1", 3, counter)
        + [("block.0.weight", "F32", [3, 3, 3, 3], f32(values(81, 5)))]
        + bn_tensors("block.norm", 6, counter)
        + [
            ("5.weight", "F32", [4, 48], f32(values(192, 8))),
            ("5.bias", "F32", [4], f32(values(4, 9))),
        ]
    )


def file(tensors, metadata=True):
    """A safetensors file: contiguous data in the given order."""
    header = {}
    data = b""
    for name, dtype, shape, raw in tensors:
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    if metadata:
        header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    # PyTorch pads the header with spaces to a multiple of 8.
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def replace(tensors, name, new):
    return [new if t[0] == name else t for t in tensors]


def without(tensors, name):
    return [t for t in tensors if t[0] != name]


def main():
    os.makedirs(OUT, exist_ok=True)
    good = valid()
    seeds = {
        # As PyTorch's save_file(model.state_dict()) writes it.
        "valid.safetensors": file(good),
        # Counters are optional: absent ones read as 0.
        "no_counters.safetensors": file(valid(counter=False), metadata=False),
        # A counter of shape [1], not [].
        "counter_shape.safetensors": file(
            replace(good, "1.num_batches_tracked", ("1.num_batches_tracked", "I64", [1], i64(3)))
        ),
        # A counter as F32, and as I32.
        "counter_f32.safetensors": file(
            replace(
                good,
                "block.norm.num_batches_tracked",
                ("block.norm.num_batches_tracked", "F32", [], f32([3.0])),
            )
        ),
        "counter_i32.safetensors": file(
            replace(good, "1.num_batches_tracked", ("1.num_batches_tracked", "I32", [], struct.pack("<i", 3)))
        ),
        # Running statistics of the wrong length, dtype, or missing.
        "running_var_shape.safetensors": file(
            replace(good, "1.running_var", ("1.running_var", "F32", [4], f32([1.0] * 4)))
        ),
        "running_mean_f16.safetensors": file(
            replace(
                good,
                "block.norm.running_mean",
                ("block.norm.running_mean", "F16", [3], f16([0.0, 0.5, -0.5])),
            )
        ),
        "missing_running_mean.safetensors": file(without(good, "block.norm.running_mean")),
        # A negative and a zero variance: loads, and runs to NaN or inf.
        "negative_var.safetensors": file(
            replace(good, "1.running_var", ("1.running_var", "F32", [3], f32([-1.0, 0.0, 1.0])))
        ),
        # A bias for the conv that has none, and a tensor of no layer.
        "extra_bias.safetensors": file(good + [("block.0.bias", "F32", [3], f32([0.0] * 3))]),
        # Every float tensor in F16 (and no counters).
        "f16.safetensors": file(
            [
                (name, "F16", shape, f16(struct.unpack(f"<{len(raw) // 4}f", raw)))
                for name, dtype, shape, raw in good
                if dtype == "F32"
            ]
        ),
        # Cut inside the last tensor.
        "truncated.safetensors": file(good)[:-7],
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as out:
            out.write(data)
    print(f"{len(seeds)} seeds in {OUT}")


if __name__ == "__main__":
    main()
