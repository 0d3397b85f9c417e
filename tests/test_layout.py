"""The package's layout rules: rooms per notebook, one-way imports, small modules, each concept defined once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
LEVEL = {  # a module may import from its own level or below, never above
    "settings": 0, "grid": 0, "argtypes": 0, "outputs": 0,
    "kokoro": 1, "mamba": 1,
    "transplant": 2, "data": 2,
    "train": 3, "compare": 3, "plots": 3,
    "speak": 4, "export": 4, "rehearsal": 4,
}  # fmt: skip
MAX_LINES = 450


def _modules():
    for path in sorted(HELPERS.rglob("*.py")):
        rel = path.relative_to(HELPERS)
        room = rel.parts[0].removesuffix(".py")
        yield path, room


def _helper_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("helpers"):
            parts = node.module.split(".")
            rooms = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
            yield from rooms
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("helpers."):
                    yield a.name.split(".")[1]


def test_every_module_is_in_a_known_room_and_small():
    for path, room in _modules():
        if path.name == "__init__.py" and path.parent == HELPERS:
            continue
        assert room in LEVEL, f"{path} is outside the rooms {sorted(LEVEL)}"
        n = len(path.read_text().splitlines())
        assert n <= MAX_LINES, f"{path.relative_to(HELPERS)} has {n} lines (split it by concept)"


def test_imports_go_one_way():
    for path, room in _modules():
        if room not in LEVEL:
            continue
        for other in _helper_imports(path):
            assert other in LEVEL, f"{path}: imports unknown helpers.{other}"
            assert LEVEL[other] <= LEVEL[room], f"{path} ({room}) imports helpers.{other}, a room above it"
            assert not (room == "compare" and other == "train"), f"{path}: compare must not import train"


def _defined(pattern: str) -> list[str]:
    rx = re.compile(pattern, re.M)
    return [str(p.relative_to(HELPERS)) for p, _ in _modules() if rx.search(p.read_text())]


def test_each_concept_is_defined_once():
    assert _defined(r"^SAMPLE_RATE\s*=") == ["grid.py"]
    assert _defined(r"^SAMPLES_PER_FRAME\s*=") == ["grid.py"]
    assert _defined(r"^def log_mel\(") == ["data/features.py"]
    assert _defined(r"^def mel_filterbank\(") == ["data/features.py"]
    assert _defined(r"^def f0_rmse\(") == ["compare/metrics.py"]
    assert _defined(r"Decoder\(") == ["data/asr.py"]  # the one pocketsphinx set-up
    assert _defined(r"^def alignment_from_durations\(") == ["kokoro/forward.py"]
    assert _defined(r"F0Ntrain\(") == ["kokoro/forward.py"]  # the prosody path exists once
    assert _defined(r"\.bert_encoder\(") == ["kokoro/forward.py"]
    assert _defined(r"\.decoder\(") == ["kokoro/forward.py"]
    assert not _defined(r"librosa\.feature\.melspectrogram"), "use helpers.data.features.mel_power"
    # F0/N from encoder outputs: the path, the training losses, the ONNX export and the one student-vs-reference
    # comparison (every scorer calls helpers.compare.scoring; none re-derives it)
    f0_users = ["compare/scoring.py", "export/onnx.py", "kokoro/forward.py", "train/stage_losses.py"]
    assert _defined(r"f0_energy\(") == f0_users
