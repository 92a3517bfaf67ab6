"""`torch_file` reads torch.save files without torch; checked here against torch itself."""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from voxserve.families.torch_file import read_torch_file


def test_tensors_and_containers_read_as_torch_wrote_them(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    saved = {
        "t3": {
            "speaker_emb": torch.randn(1, 256, generator=g),
            "cond_prompt_speech_tokens": torch.randint(0, 6561, (1, 150), generator=g),
            "clap_emb": None,
            "emotion_adv": 0.5 * torch.ones(1, 1, 1),
        },
        "gen": OrderedDict(
            prompt_feat=torch.randn(1, 100, 80, generator=g), mask=torch.tensor([True, False])
        ),
        # A view into a larger storage, transposed: offsets and strides must be honoured.
        "view": torch.arange(24, dtype=torch.int32).reshape(4, 6)[1:, 2:].t(),
        "half": torch.randn(3, generator=g).half(),
        "scalar": torch.tensor(3.25, dtype=torch.float64),
        "list": [torch.zeros(2), 7, "text"],
    }
    path = tmp_path / "conds.pt"
    torch.save(saved, path)
    read = read_torch_file(path)
    for part in ("t3", "gen"):
        for key, value in saved[part].items():
            if isinstance(value, torch.Tensor):
                np.testing.assert_array_equal(read[part][key], value.numpy())
                assert read[part][key].shape == tuple(value.shape)
            else:
                assert read[part][key] == value
    np.testing.assert_array_equal(read["view"], saved["view"].numpy())
    assert read["half"].dtype == np.float16 and np.array_equal(read["half"], saved["half"].numpy())
    assert read["scalar"].shape == () and float(read["scalar"]) == 3.25
    assert read["list"][1:] == [7, "text"] and read["list"][0].tolist() == [0.0, 0.0]


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_a_pickle_naming_other_callables_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"x": _Exploit()}))
    with pytest.raises(ValueError, match=r"builtins\.print is not a tensor or a plain container"):
        read_torch_file(path)


@pytest.mark.parametrize("content", [b"not a zip", b""])
def test_files_that_are_not_torch_saves_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=str(path)):
        read_torch_file(path)


def test_a_zip_without_a_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x/other", b"")
    with pytest.raises(ValueError, match=r"no data\.pkl"):
        read_torch_file(path)
