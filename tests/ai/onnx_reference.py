"""The independent reference for the diagnosis tests and benchmark: the same input
tensors through onnxruntime (CPU).

    onnx_reference.py MODEL TENSORS SHAPE [REPEAT]

TENSORS holds float32 little-endian values laid out as SHAPE (comma-separated,
batch first). Prints {"outputs": [[...], ...], "seconds": [per-run wall times]}.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, tensors, shape = sys.argv[1], sys.argv[2], [int(d) for d in sys.argv[3].split(",")]
    repeat = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    batch = np.fromfile(tensors, dtype="<f4").reshape(shape)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        outputs = session.run(None, {name: batch})[0]
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"outputs": outputs.astype(float).tolist(), "seconds": seconds}))


if __name__ == "__main__":
    main()
