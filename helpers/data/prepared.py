"""What `helpers.data.prepare.prepare_dataset` returns: the prepared splits as lazy lists of cached items.

    data.train, data.dev, data.test, data.suspect     TargetsList each: len(), [i] -> ItemTargets (loaded from its .npz)
    data.failed, data.report, data.manifest, data.stats, data.split_file, data.split_hash
    data.summary(), data.why_empty(), data.table()

`prepare_dataset` builds one from the manifest rows it writes (helpers.data.prepare); nothing here computes targets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from helpers.data.targets import ItemTargets
from helpers.data.validate import ValidationReport


class TargetsList(Sequence):
    """A read-only list of cached items: `[i]` loads `ItemTargets` from its .npz (nothing held in memory),
    so it works as a map-style torch Dataset too. `.rows` holds each item's manifest row."""

    def __init__(self, root: Path, rows: list[dict], split: str):
        self.root, self.rows, self.split = Path(root), list(rows), split

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return ItemTargets.load(self.root / self.rows[i]["file"], split=self.split)

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.rows]

    @property
    def seconds(self) -> float:
        return sum(r["n_frames"] for r in self.rows) * 0.025

    def __repr__(self) -> str:
        return f"TargetsList({self.split}: {len(self)} items, {self.seconds:.1f} s)"


@dataclass
class PreparedDataset:
    """What `prepare_dataset` returns (see the module docstring)."""

    train: TargetsList
    dev: TargetsList  # every choice (selection, early stopping)
    test: TargetsList  # the verdict only
    suspect: TargetsList  # flagged by the word check; in a split too only with keep_suspect=True
    failed: list[dict]  # kept by validation, but targets could not be computed: {id, reason}
    report: ValidationReport
    manifest: dict
    cache_dir: Path
    stats: dict = field(default_factory=dict)  # computed, cached, seconds, workers, serial_because
    split_file: Path | None = None  # split.json: the ids of each split
    split_hash: str = ""  # short sha256 of split.json's content: what artefacts record

    def summary(self):
        """One-row pandas table: counts, split sizes (items and seconds of audio), time, cache hits."""
        import pandas as pd

        s = self.report.summary()
        return pd.DataFrame(
            [
                {
                    "items": s["items"],
                    "refused": s["excluded"],
                    "failed": len(self.failed),
                    "suspect": len(self.suspect),
                    "train": len(self.train),
                    "dev": len(self.dev),
                    "test": len(self.test),
                    "train_s": round(self.train.seconds, 1),
                    "dev_s": round(self.dev.seconds, 1),
                    "test_s": round(self.test.seconds, 1),
                    "computed": self.stats.get("computed", 0),
                    "from_cache": self.stats.get("cached", 0),
                    "seconds": round(self.stats.get("seconds", 0.0), 1),
                }
            ]
        )

    def why_empty(self) -> str:
        """Why no item is left for training: how many were read, refused (by reason), failed, suspect."""
        s = self.report.summary()
        lines = [f"{len(self.train)} items for training, {len(self.dev)} dev, {len(self.test)} test, of {s['items']} read:"]
        if s["excluded"]:
            reasons = ", ".join(f"{code} {n}" for code, n in s["excluded_by_reason"].items())
            lines.append(f"  refused by validation: {s['excluded']} ({reasons}); see data.report.describe()")
        if self.failed:
            lines.append(f"  failed while computing targets: {len(self.failed)} ({self.failed[0]['reason'][:120]})")
        if len(self.suspect):
            flags = Counter(r["reason"].split(":", 1)[0][:60] for r in self.suspect.rows)
            kept_out = "kept" if self.manifest.get("keep_suspect") else "set aside (keep_suspect=False)"
            why = "; ".join(f"{k} x{n}" for k, n in flags.items())
            lines.append(f"  suspect by the word check, {kept_out}: {len(self.suspect)} ({why}); see data.table()")
        if self.manifest.get("limit"):
            lines.append(f"  limit={self.manifest['limit']} items were used of {len(self.report.kept)} kept")
        return "\n".join(lines)

    def table(self):
        """One row per prepared item: split, seconds, tokens, suspect flag and the word-check numbers
        (errors vs pocketsphinx after its offset; `max_speech_err_ms` ignores pauses, and decides `suspect`)."""
        import pandas as pd

        rows = []
        for r in self.manifest["items"]:
            c = r.get("check", {})
            rows.append(
                {
                    "id": r["id"],
                    "split": r["split"],
                    "seconds": round(r["n_frames"] * 0.025, 2),
                    "tokens": r["n_tokens"],
                    "suspect": r["suspect"],
                    "checked": c.get("checked"),
                    "mean_err_ms": c.get("mean_error_ms"),
                    "max_err_ms": c.get("max_error_ms"),
                    "max_speech_err_ms": c.get("max_speech_error_ms"),
                    "reason": r["reason"] if c.get("checked") else f"not checked: {c.get('reason', '')}",
                }
            )
        return pd.DataFrame(rows)


def differences(a: PreparedDataset, b: PreparedDataset) -> list[str]:
    """What differs between two preparations of the same clips (e.g. serial and pooled: helpers.data.pool), as
    sentences; [] when they are bit-identical: the same settings hash, manifest rows in the same order (each with
    its split), failures and split.json, and every item file holding the same arrays (dtype, shape, bytes) and
    the same metadata. Timings, dates and the commit are not compared."""
    import json

    import numpy as np

    out = []
    for key in ("settings_hash", "items", "failed"):
        if a.manifest.get(key) != b.manifest.get(key):
            out.append(f"manifest[{key!r}] differs")
    if json.loads(a.split_file.read_text()) != json.loads(b.split_file.read_text()):
        out.append("split.json differs")
    for row in a.manifest["items"]:
        with np.load(a.cache_dir / row["file"]) as x, np.load(b.cache_dir / row["file"]) as y:
            if sorted(x.files) != sorted(y.files):
                out.append(f"{row['id']}: arrays {sorted(x.files)} vs {sorted(y.files)}")
                continue
            for k in x.files:
                u, v = x[k], y[k]
                if u.dtype != v.dtype or u.shape != v.shape or u.tobytes() != v.tobytes():
                    out.append(f"{row['id']}: {k} differs")
    return out
