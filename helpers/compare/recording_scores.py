"""The recordings' own scores, cached per clip: their pocketsphinx WER, DNSMOS and speaker embedding.

Notebook 06 scores the test recordings themselves next to every system (the rows of model "recording" that
`helpers.compare.evaluation.evaluate_recordings` adds). The recordings do not change from run to run, so with a
cache folder (`cache_dir=S.cache_dir`: the workbook's cache, env KOKORO_MAMBA_CACHE) each score is computed once:

    scores = RecordingScores(S.cache_dir)      # RecordingScores(None): nothing cached, every score computed
    scores.wer(audio, text)   -> (WER %, transcript)      metrics.asr_wer
    scores.dnsmos(audio)      -> DNSMOS overall, 1..5      metrics.dnsmos(audio)["ovrl"]
    scores.embedding(audio)   -> (256,) float32            similarity.embed (the speaker is their mean)
    scores.computed           -> Counter: scores computed (not read from the cache) by scorer, this object

Each score is one small JSON file, ``<cache>/recording-scores/<scorer>/<key>.json``, whose key is a sha256 of the
scorer's identity (`SCORERS`: its name, `VERSION` and the versions of the packages that compute it), the clip's
samples (float32 bytes, 24 kHz) and, for the WER only, the transcript it is scored against. So a changed clip,
transcript, scorer or package is scored again, and nothing else is. Floats go through JSON unchanged (a float32
embedding too), so a cached row equals the row computed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np

from helpers.compare import metrics as M
from helpers.grid import SAMPLE_RATE

VERSION = 1  # bump when the way the workbook scores a recording changes (invalidates every cached score)
SCORERS = {  # scorer -> the packages whose versions are part of its identity
    "wer": ("pocketsphinx", "jiwer", "librosa", "soxr"),
    "dnsmos": ("speechmos", "onnxruntime", "librosa", "soxr"),
    "embedding": ("resemblyzer", "webrtcvad-wheels", "torch", "librosa"),
}
FOLDER = "recording-scores"


@functools.cache
def scorer_identity(scorer: str) -> str:
    """The scorer's identity: its name, VERSION and package versions, e.g. "wer v1 pocketsphinx==5.1.1 ..."
    (a package not installed reads "absent")."""

    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "absent"

    return " ".join([f"{scorer} v{VERSION}", *(f"{p}=={version(p)}" for p in SCORERS[scorer])])


class RecordingScores:
    """What a recording scores on its own, read from the cache folder when it holds it (module docstring)."""

    def __init__(self, cache_dir: str | Path | None):
        self.folder = None if cache_dir is None else Path(cache_dir) / FOLDER
        self.computed: Counter = Counter()

    def wer(self, audio, text: str) -> tuple[float, str]:
        out = self._score("wer", audio, text, lambda: list(M.asr_wer(audio, text)))
        return float(out[0]), str(out[1])

    def dnsmos(self, audio) -> float:
        return float(self._score("dnsmos", audio, "", lambda: M.dnsmos(audio)["ovrl"]))

    def embedding(self, audio) -> np.ndarray:
        from helpers.compare import similarity as SIM

        out = self._score("embedding", audio, "", lambda: SIM.embed(audio, SAMPLE_RATE).tolist())
        return np.asarray(out, dtype=np.float32)

    def key(self, scorer: str, audio, text: str = "") -> str:
        """sha256 of the scorer's identity, the clip's float32 samples and (the WER's) transcript."""
        h = hashlib.sha256(scorer_identity(scorer).encode())
        h.update(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
        h.update(f"|{SAMPLE_RATE}|{text}".encode())
        return h.hexdigest()

    def _score(self, scorer: str, audio, text: str, compute):
        path = None if self.folder is None else self.folder / scorer / f"{self.key(scorer, audio, text)}.json"
        if path is not None and path.is_file():
            try:
                return json.loads(path.read_text())["value"]
            except (OSError, ValueError, KeyError):  # an unreadable entry is scored again
                pass
        value = compute()
        self.computed[scorer] += 1
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"scorer": scorer_identity(scorer), "value": value}))
            tmp.replace(path)  # atomic: two notebooks scoring the same clip never leave half a file
        return value
