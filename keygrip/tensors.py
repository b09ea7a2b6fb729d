"""keygrip.v1.Tensor <-> numpy. numpy is imported on first use: hosts always have it (Blender
ships it), but a script that only probes media should not pay for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keygrip.v1 import common_pb2

if TYPE_CHECKING:
    import numpy as np

_DTYPES: dict[int, str] = {
    common_pb2.DTYPE_FLOAT32: "<f4",
    common_pb2.DTYPE_FLOAT64: "<f8",
    common_pb2.DTYPE_INT32: "<i4",
    common_pb2.DTYPE_UINT8: "u1",
}


def to_tensor(array: np.ndarray, dtype: common_pb2.DType.ValueType = common_pb2.DTYPE_FLOAT32) -> common_pb2.Tensor:
    import numpy as np

    arr = np.ascontiguousarray(np.asarray(array), dtype=_DTYPES[dtype])
    return common_pb2.Tensor(shape=list(arr.shape), dtype=dtype, data=arr.tobytes())


def from_tensor(tensor: common_pb2.Tensor) -> np.ndarray:
    import numpy as np

    if tensor.dtype not in _DTYPES:
        raise ValueError("tensor has no dtype set")
    arr = np.frombuffer(tensor.data, dtype=_DTYPES[tensor.dtype])
    expected = int(np.prod(tensor.shape)) if len(tensor.shape) else 1
    if arr.size != expected:
        raise ValueError(f"tensor holds {arr.size} values but its shape {list(tensor.shape)} needs {expected}")
    return arr.reshape(tuple(tensor.shape))
