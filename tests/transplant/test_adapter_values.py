"""An adapter with a NaN or infinite tensor is refused on reading, naming the file and the tensor (issue 27);
before, it loaded and failed later as "repeats can not be negative"."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from helpers.transplant.adapters import ADAPTER_FORMAT, AdapterFormatError, read_adapter


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_non_finite_adapter_is_refused(tmp_path, bad, dtype):
    weight = torch.zeros(4, 4, dtype=dtype)
    weight[1, 2] = bad
    save_file({"blocks.0.w": weight, "ok": torch.ones(2)}, str(tmp_path / "a.safetensors"))
    (tmp_path / "a.json").write_text(json.dumps({"format": ADAPTER_FORMAT, "surgery": {}}))
    with pytest.raises(AdapterFormatError, match=r"a.safetensors: 1 tensor\(s\) hold NaN or infinite values \(blocks.0.w\)"):
        read_adapter(tmp_path / "a")
