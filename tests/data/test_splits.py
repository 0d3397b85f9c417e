"""Train / dev / test of prepared recordings (helpers.data.splits): disjoint, stable, sized, recorded."""

from __future__ import annotations

import json

from helpers.data.readers import read_ljspeech
from helpers.data.splits import SIDES, SplitRule, assign_splits, clip_key, write_split
from helpers.settings import REPO_ROOT


def _keys(n: int, prefix: str = "clip") -> dict[str, str]:
    return {f"{prefix}-{i:04d}": f"content of {prefix} {i}" for i in range(n)}


def test_sides_are_disjoint_and_cover_every_clip():
    keys = _keys(300)
    sides = assign_splits(keys)
    assert set(sides) == set(keys) and set(sides.values()) == set(SIDES)
    counts = {s: list(sides.values()).count(s) for s in SIDES}
    assert 170 <= counts["train"] <= 230 and 25 <= counts["dev"] <= 55 and 45 <= counts["test"] <= 75, counts


def test_split_is_stable_when_clips_are_added_and_independent_of_order():
    keys = _keys(400)
    a = assign_splits(keys)
    grown = assign_splits({**keys, **_keys(150, "new")})
    assert all(grown[i] == a[i] for i in keys)  # adding clips moves no one
    assert assign_splits(dict(reversed(list(keys.items())))) == a
    assert assign_splits(keys, SplitRule(seed=1)) != a  # the seed is part of the rule


def test_split_follows_the_content_not_only_the_id():
    keys = _keys(400)
    changed = {i: k + " (re-recorded)" for i, k in keys.items()}
    a, b = assign_splits(keys), assign_splits(changed)
    assert sum(a[i] != b[i] for i in keys) > 50


def test_small_sets_get_their_minimums_and_keep_training_clips():
    for n, expect in [(1, (1, 0, 0)), (2, (1, 1, 0)), (3, (1, 1, 1)), (4, (2, 1, 1)), (5, (3, 1, 1))]:
        sides = list(assign_splits(_keys(n)).values())
        assert tuple(sides.count(s) for s in SIDES) == expect, (n, sides)
    for n in (40, 100, 160, 2000):
        sides = list(assign_splits(_keys(n)).values())
        assert sides.count("test") >= min(20, n // 5) and sides.count("dev") >= min(20, n // 8), n
        assert sides.count("train") >= 0.55 * n, n


def test_split_file_records_the_ids_and_its_hash_tracks_content(tmp_path):
    sides = assign_splits(_keys(10))
    path, digest = write_split(tmp_path, sides, SplitRule(), ["suspect-1"], keep_suspect=False)
    record = json.loads(path.read_text())
    assert record["seed"] == 0 and record["suspect_set_aside"] == ["suspect-1"]
    assert sorted(record["train"] + record["dev"] + record["test"]) == sorted(sides)
    assert write_split(tmp_path, sides, SplitRule(), ["suspect-1"], keep_suspect=False)[1] == digest
    moved = {**sides, "clip-0000": "test" if sides["clip-0000"] != "test" else "dev"}
    assert write_split(tmp_path, moved, SplitRule(), ["suspect-1"], keep_suspect=False)[1] != digest


def test_clip_key_reads_the_audio():
    items = read_ljspeech(REPO_ROOT / "data" / "librivox")
    keys = [clip_key(it) for it in items]
    assert len(set(keys)) == len(items) and keys == [clip_key(it) for it in items]


def test_heldout_sentences_are_halved_into_dev_and_test():
    """Stage-1 choices read data/text/heldout_dev.txt, reported figures heldout_test.txt: disjoint, together the
    whole held-out file, and exactly the deterministic split of helpers.data.text_corpus.heldout_halves."""
    from helpers.data.corpus import load_sentences
    from helpers.data.text_corpus import heldout_file, heldout_halves

    text = REPO_ROOT / "data" / "text"
    whole = load_sentences(text / "heldout.txt")
    dev, test = (load_sentences(heldout_file(h, REPO_ROOT / "data")) for h in ("dev", "test"))
    assert heldout_halves(whole) == {"dev": dev, "test": test}
    assert not set(dev) & set(test) and sorted(dev + test) == sorted(whole) and abs(len(dev) - len(test)) <= 1
    assert heldout_halves(list(reversed(whole)))["dev"] == list(reversed(dev))  # by content, not by order
