"""Adapters never lose or half-apply what the user made (issue 16, items 3 and 4 for adapters).

Names are used as given (dots included), nothing is overwritten unless asked, and a bad adapter (damaged
file, invalid JSON, a newer format, tensors that do not fit) is refused with the file's name *before*
the model changes.
"""

from __future__ import annotations

import json

import pytest
import torch

from helpers.transplant.adapters import (
    AdapterFormatError,
    AdapterMismatchError,
    list_adapters,
    load_adapter,
    read_adapter,
    save_adapter,
)
from helpers.transplant.surgery import DURATION_ENCODER_PATH, MambaDurationEncoder, SurgeryConfig
from helpers.transplant.surgery import replace_duration_encoder as operate

SMALL = SurgeryConfig(n_layers=1, d_state=4, expand=1)


@pytest.fixture(scope="module")
def operated():
    from helpers.kokoro.loading import load_kokoro

    model = load_kokoro("random", size="small", seed=0, verbose=False).model
    operate(model, SMALL)
    return model


def _perturb(model, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.get_submodule(DURATION_ENCODER_PATH).parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))


def test_dotted_names_are_kept_and_nothing_is_overwritten_unless_asked(operated, tmp_path):
    _perturb(operated, 1)
    a = save_adapter(operated, tmp_path / "stage1.lr1e-3", {"lr": 1e-3})
    _perturb(operated, 2)
    b = save_adapter(operated, tmp_path / "stage1.lr3e-4", {"lr": 3e-4})
    assert [p.name for p in a] == ["stage1.lr1e-3.safetensors", "stage1.lr1e-3.json"]
    assert [p.name for p in b] == ["stage1.lr3e-4.safetensors", "stage1.lr3e-4.json"]
    assert sorted(p.name for p in list_adapters(tmp_path)) == ["stage1.lr1e-3", "stage1.lr3e-4"]
    info_a, ta = read_adapter(tmp_path / "stage1.lr1e-3")
    info_b, tb = read_adapter(tmp_path / "stage1.lr3e-4.safetensors")  # the file name works too
    assert info_a["metadata"]["lr"] == 1e-3 and info_b["metadata"]["lr"] == 3e-4
    assert any(not torch.equal(ta[k], tb[k]) for k in ta)

    before = [p.read_bytes() for p in a]
    with pytest.raises(FileExistsError, match=r"stage1\.lr1e-3\.safetensors already exists.*overwrite=True"):
        save_adapter(operated, tmp_path / "stage1.lr1e-3", {"lr": "other"})
    assert [p.read_bytes() for p in a] == before  # untouched
    save_adapter(operated, tmp_path / "stage1.lr1e-3", {"lr": "other"}, overwrite=True)
    assert read_adapter(a[0])[0]["metadata"]["lr"] == "other"


def _fresh():
    from helpers.kokoro.loading import load_kokoro

    return load_kokoro("random", size="small", seed=0, verbose=False).model


def _damage(kind: str, st, js) -> str:
    """Damage a saved adapter; returns the text the error must contain (besides the file's name)."""
    if kind == "truncated":
        st.write_bytes(st.read_bytes()[:100])
        return "not a readable safetensors file"
    if kind == "empty":
        st.write_bytes(b"")
        return "not a readable safetensors file"
    if kind == "bad_json":
        js.write_text('{"format": "kokoro-mamba-adapter/1", "surgery": {,}')
        return r"not valid JSON \(line 1"
    info = json.loads(js.read_text())
    if kind == "newer_keys":
        info["surgery"]["gate"] = "swiglu"
        js.write_text(json.dumps(info))
        return r"surgery settings \['gate'\] are unknown to this version"
    if kind == "newer_format":
        info["format"] = "kokoro-mamba-adapter/2"
        js.write_text(json.dumps(info))
        return "from another version of this workbook"
    if kind == "shapes":  # the JSON claims a wider state than the tensors have
        info["surgery"]["d_state"] = 8
        js.write_text(json.dumps(info))
        return "does not match: wrong shapes"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated", "empty", "bad_json", "newer_keys", "newer_format", "shapes"])
def test_bad_adapter_names_its_file_and_leaves_the_model_untouched(operated, tmp_path, kind):
    st, js = save_adapter(operated, tmp_path / "run.v2" / "adapter")
    expected = _damage(kind, st, js)
    model = _fresh()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    error = AdapterMismatchError if kind == "shapes" else AdapterFormatError
    with pytest.raises(error, match=expected) as exc:
        load_adapter(model, tmp_path / "run.v2" / "adapter")
    assert str(tmp_path / "run.v2" / "adapter") in str(exc.value)
    assert not isinstance(model.get_submodule(DURATION_ENCODER_PATH), MambaDurationEncoder)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    # a good adapter beside it still loads
    save_adapter(operated, tmp_path / "good")
    assert load_adapter(model, tmp_path / "good") == SMALL
