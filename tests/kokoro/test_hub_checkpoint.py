"""The hub route, offline: an official-format kokoro-v1_0.pth in a Hugging Face cache layout loads through
load_kokoro("hub") with HF_HUB_OFFLINE=1; absent keys are reported or refused by name, keys the model lacks are
reported and skipped (as kokoro's own loader does); the three failures
(unreachable, missing file, incompatible checkpoint) are told apart."""

from __future__ import annotations

import json
import re

import pytest
import torch

from helpers.kokoro import checkpoint as C
from helpers.kokoro.loading import HUB_REPO, load_kokoro
from helpers.kokoro.weights import split_by_component

REV = "0123456789abcdef0123456789abcdef01234567"  # any 40-hex commit hash
AFFINE = re.compile(r"\.norm\.(weight|bias)$")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache for HUB_REPO under tmp_path, selected through HF_HOME/HF_HUB_CACHE, offline mode on.

    huggingface_hub reads those variables once at import, so its constants are set to match: what a fresh
    process with these variables would see. Returns the snapshot folder to put files in.
    """
    from huggingface_hub import constants

    home, cache = tmp_path / "hf", tmp_path / "hf" / "hub"
    for var, value in (("HF_HOME", home), ("HF_HUB_CACHE", cache), ("HF_HUB_OFFLINE", "1")):
        monkeypatch.setenv(var, str(value))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    repo = cache / f"models--{HUB_REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REV)
    snapshot = repo / "snapshots" / REV
    snapshot.mkdir(parents=True)
    return snapshot


def _official_format(kokoro_offline) -> dict[str, dict[str, torch.Tensor]]:
    """The offline weights laid out as kokoro-v1_0.pth: `module.` prefixes, no AdaIN affine keys."""
    flat = {k: v for k, v in kokoro_offline.model.state_dict().items() if not AFFINE.search(k)}
    return {c: {f"module.{k}": v for k, v in sd.items()} for c, sd in split_by_component(flat).items()}


def _place(snapshot, config: dict, components) -> None:
    (snapshot / C.CONFIG_FILE).write_text(json.dumps(config))
    torch.save(components, snapshot / C.CHECKPOINT_FILE)


@pytest.mark.slow
def test_official_format_loads_through_the_hub_path_offline(kokoro_offline, hub_cache):
    _place(hub_cache, kokoro_offline.config, _official_format(kokoro_offline))
    kk = load_kokoro("hub", verbose=False)
    assert kk.source == "hub"
    reference = kokoro_offline.model.state_dict()
    affine = {k for k in reference if AFFINE.search(k)}
    assert affine and set(kk.absent_keys) == affine, "exactly the removed AdaIN affine keys are reported"
    assert all("InstanceNorm affine" in reason for reason in kk.absent_keys.values())
    loaded = kk.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in reference.items()), "every tensor arrives unchanged"
    assert "absent from the file" in kk.note
    # "auto" finds the cached files and takes the same path
    assert load_kokoro("auto", verbose=False).absent_keys == kk.absent_keys


@pytest.mark.slow
def test_a_missing_key_fails_naming_the_key(kokoro_offline, hub_cache):
    components = _official_format(kokoro_offline)
    key = "predictor.duration_proj.linear_layer.weight"
    del components["predictor"]["module." + key.split(".", 1)[1]]
    _place(hub_cache, kokoro_offline.config, components)
    for source in ("hub", "auto"):  # auto must not hide it behind the offline fallback
        with pytest.raises(C.IncompatibleCheckpoint, match=rf"1 missing keys: {re.escape(key)}$"):
            load_kokoro(source, verbose=False)


@pytest.mark.slow
def test_keys_the_model_lacks_are_reported_and_skipped_as_kokoro_does(kokoro_offline, hub_cache):
    """Older transformers versions saved ALBERT's `embeddings.position_ids` buffer; kokoro's KModel loads such a
    file (strict=False), and so must the hub path: the extra keys are named in a warning and skipped."""
    components = _official_format(kokoro_offline)
    components["bert"]["module.embeddings.position_ids"] = torch.arange(512)[None]
    components["decoder"]["module.extra_head.weight"] = torch.zeros(3)
    _place(hub_cache, kokoro_offline.config, components)
    skipped = ["bert.embeddings.position_ids", "decoder.extra_head.weight"]
    with pytest.warns(UserWarning, match=r"skipped 2 entries .*bert\.embeddings\.position_ids, decoder\.extra_head"):
        kk = load_kokoro("hub", verbose=False)
    assert sorted(kk.skipped_keys) == skipped and "skipped" in kk.note
    reference = kokoro_offline.model.state_dict()
    assert set(kk.absent_keys) == {k for k in reference if AFFINE.search(k)}
    loaded = kk.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in reference.items()), "every model tensor arrives unchanged"
    with pytest.warns(UserWarning, match="skipped 2 entries"):
        assert sorted(load_kokoro("auto", verbose=False).skipped_keys) == skipped


def test_shape_and_component_mismatches_are_named():
    ref = {"bert.a": torch.zeros(2), "decoder.b": torch.zeros(3), "decoder.x.norm.weight": torch.ones(3)}
    ok = {"bert": {"a": torch.zeros(2)}, "decoder": {"b": torch.zeros(3)}}
    for c in C.COMPONENTS:
        ok.setdefault(c, {})
    report = C.check_components(ref, ok)
    assert report.absent == {"decoder.x.norm.weight": C.allowed_absent_reason("decoder.x.norm.weight")}
    assert report.skipped == []
    extra = dict(ok, bert={"a": torch.zeros(2), "embeddings.position_ids": torch.zeros(1, 4)}, vocoder={})
    assert C.check_components(ref, extra).skipped == ["bert.embeddings.position_ids", "vocoder"]
    bad = dict(ok, decoder={"b": torch.zeros(4)})
    with pytest.raises(C.IncompatibleCheckpoint, match=r"1 shape mismatches: decoder\.b: \(4,\)"):
        C.check_components(ref, bad)
    no_bert = {c: sd for c, sd in ok.items() if c != "bert"}
    with pytest.raises(C.IncompatibleCheckpoint, match=r"components missing: \['bert'\]"):
        C.check_components(ref, no_bert)


def test_nothing_cached_offline_is_reported_as_unreachable(hub_cache):
    with pytest.raises(
        C.HubUnreachable, match=r"config\.json of hexgrad/Kokoro-82M is not in the local hub cache"
    ):
        load_kokoro("hub", verbose=False)


class NotWeights:
    """Any pickled object that is not a tensor: torch.load(weights_only=True) must refuse it."""


def test_a_pickle_that_is_not_weights_only_is_incompatible(hub_cache):
    (hub_cache / C.CONFIG_FILE).write_text("{}")
    torch.save({"bert": {"x": NotWeights()}}, hub_cache / C.CHECKPOINT_FILE)
    with pytest.raises(C.IncompatibleCheckpoint, match="cannot be read as a weights-only PyTorch checkpoint"):
        load_kokoro("hub", verbose=False)
    torch.save([torch.zeros(1)], hub_cache / C.CHECKPOINT_FILE)
    with pytest.raises(C.IncompatibleCheckpoint, match=r"not Kokoro's \{component: state_dict\} layout"):
        C.read_checkpoint(hub_cache / C.CHECKPOINT_FILE)


def test_the_three_hub_failures_have_three_messages(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    def failing(exc):
        def download(*args, **kwargs):
            raise exc

        return download

    cases = [
        (LocalEntryNotFoundError("not cached"), C.HubUnreachable, "not in the local hub cache"),
        (ConnectionResetError("reset by peer"), C.HubUnreachable, "downloading kokoro-v1_0.pth .* failed"),
        (EntryNotFoundError("404"), C.HubFileMissing, "the hub answered, but .* has no kokoro-v1_0.pth"),
    ]
    for exc, kind, message in cases:
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing(exc))
        with pytest.raises(kind, match=message):
            C.fetch(HUB_REPO, C.CHECKPOINT_FILE, local_only=False)
