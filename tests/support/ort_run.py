"""Runs an ONNX model exported by cnn in onnxruntime, for tests/onnx_parity.rs.

Usage: ort_run.py MODEL INPUT OUTPUT N C H W

INPUT holds N*C*H*W little-endian float32 values (the batch, row-major).
The model is first checked with onnx.checker (full check, with shape
inference); then OUTPUT receives the model's output as little-endian
float32 values, and its shape is printed on stdout, e.g. "2 10 1 1".
"""

import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> None:
    model_path, input_path, output_path = sys.argv[1:4]
    shape = tuple(int(d) for d in sys.argv[4:8])

    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    opset = {o.domain: o.version for o in model.opset_import}[""]
    if opset < 13:
        raise SystemExit(f"opset {opset} is older than 13")
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    if not batch.dim_param:
        raise SystemExit("the batch dimension of `input` is not symbolic")

    x = np.fromfile(input_path, dtype="<f4").reshape(shape)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    (y,) = session.run(["output"], {"input": x})
    y.astype("<f4").tofile(output_path)
    print(" ".join(str(d) for d in y.shape))


if __name__ == "__main__":
    main()
