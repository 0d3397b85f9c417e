"""Train / dev / test for prepared recordings: a seeded hash of each clip's content, recorded in split.json.

    rule = SplitRule()                          # seed 0, dev 13%, test 20%, minimums 20 each where data allows
    sides = assign_splits({id: clip_key(item)}, rule)          # {id: "train" | "dev" | "test"}
    path, digest = write_split(cache_dir, sides, rule, set_aside=[suspect ids], keep_suspect=False)

helpers.data.prepare calls these after the word check has set the suspect clips aside (a flagged clip never
takes a dev or test place). A clip's side depends on its own content only, so adding clips moves no one, except the
top-ups that give small sets their minimum dev and test clips. `digest` (a short sha256 of split.json) is what
the artefacts trained or chosen on a split record (fit_voice's voice JSON, stage-2 adapters).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from helpers.data.readers import Item

SIDES = ("train", "dev", "test")


@dataclass(frozen=True)
class SplitRule:
    """How clips are split: dev and test fractions of a seeded content hash, topped up to the minimums where the
    data allows (dev at most an eighth, test at most a fifth of the clips; one each from 3 clips, dev from 2)."""

    seed: int = 0
    dev_fraction: float = 0.13
    test_fraction: float = 0.2
    min_dev: int = 20
    min_test: int = 20

    def describe(self) -> str:
        return (
            f"sha256(seed {self.seed}, clip content) -> u in [0, 1): test if u < {self.test_fraction}, dev if u < "
            f"{self.test_fraction + self.dev_fraction:.2f}, else train; topped up from train (smallest u first) to "
            f"min(test {self.min_test}, n/5) and min(dev {self.min_dev}, n/8), at least 1 test from 3 clips and "
            "1 dev from 2; made after the suspect clips are set aside"
        )


def clip_key(item: Item) -> str:
    """The content a clip's split is drawn from: its id, transcript and the wav's bytes (sha256)."""
    audio = hashlib.sha256(Path(item.wav_path).read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps([item.id, item.tts_text, audio]).encode()).hexdigest()[:16]


def split_value(key: str, seed: int) -> float:
    """A stable number in [0, 1) from (seed, key), independent of every other clip."""
    return int.from_bytes(hashlib.sha256(f"{seed}|{key}".encode()).digest()[:8], "big") / 2.0**64


def assign_splits(keys: dict[str, str], rule: SplitRule | None = None) -> dict[str, str]:
    """{id: "train" | "dev" | "test"} for {id: content key} by `rule` (SplitRule's docstring)."""
    rule = rule or SplitRule()
    u = {i: split_value(k, rule.seed) for i, k in keys.items()}
    out = {
        i: "test" if v < rule.test_fraction else "dev" if v < rule.test_fraction + rule.dev_fraction else "train"
        for i, v in u.items()
    }
    n = len(keys)
    need = {"test": max(min(rule.min_test, n // 5), 1 if n >= 3 else 0),
            "dev": max(min(rule.min_dev, n // 8), 1 if n >= 2 else 0)}  # fmt: skip
    for side in ("test", "dev"):
        missing = need[side] - sum(v == side for v in out.values())
        for i in sorted((i for i in out if out[i] == "train"), key=lambda i: (u[i], i))[: max(0, missing)]:
            out[i] = side
    return out


def write_split(cache: Path, splits: dict[str, str], rule: SplitRule, set_aside: list[str], keep_suspect: bool):
    """split.json beside the prepared data; returns (path, short sha256 of its content)."""
    record = {
        "format": 1,
        "seed": rule.seed,
        "rule": rule.describe(),
        "config": dataclasses.asdict(rule),
        "content_key": "sha256 of [id, transcript, sha256 of the wav bytes] (helpers.data.splits.clip_key)",
        "roles": {"train": "fitting", "dev": "every choice (selection, early stopping)", "test": "the verdict only"},
        **{side: sorted(i for i, v in splits.items() if v == side) for side in SIDES},
        "suspect_set_aside": sorted(set_aside),
        "keep_suspect": keep_suspect,
    }
    text = json.dumps(record, indent=1, ensure_ascii=False)
    path = cache / "split.json"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return path, hashlib.sha256(text.encode()).hexdigest()[:12]
