"""Reads a `torch.save` file (the zip format) of plain containers and dense tensors into numpy,
without torch: the gateway image has no torch, and Chatterbox voices (`conds.pt`) are such files.

Only what tensors need is rebuilt: the pickle may name tensors, their storages and plain Python
containers; any other class is refused (so a file cannot run code through the unpickler).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

# torch's legacy storage class names and the dtypes they hold.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Storage:
    def __init__(self, dtype: type, data: bytes) -> None:
        self.array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))


def _rebuild_tensor(
    storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> np.ndarray:
    item = storage.array.itemsize
    if not size:
        return storage.array[offset : offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(
        storage.array[offset:], shape=size, strides=tuple(s * item for s in stride)
    )
    return np.array(view)


def _ordered_dict(*args: Any) -> dict[Any, Any]:
    return dict(*args)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self.archive = archive
        self.prefix = prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            return _ordered_dict
        raise pickle.UnpicklingError(f"{module}.{name} is not a tensor or a plain container")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, dtype, key, _location, _numel = pid
        if kind != "storage" or not isinstance(dtype, type):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return _Storage(dtype, self.archive.read(f"{self.prefix}/data/{key}"))


def read_torch_file(path: Path) -> Any:
    """The saved object, tensors as numpy arrays. ValueError for anything else."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = next((n for n in archive.namelist() if n.endswith("/data.pkl")), None)
            if pickled is None:
                raise ValueError("not a torch.save zip file (no data.pkl)")
            prefix = pickled[: -len("/data.pkl")]
            with archive.open(pickled) as f:
                return _Unpickler(f, archive, prefix).load()
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
