"""The scan as one ONNX Loop: same numbers as the training scan, and an exported BiMamba runs at any length."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.export.onnx import loop_ops
from helpers.mamba.bidirectional import SharedBiMamba
from helpers.mamba.scan import _scan_tm
from helpers.mamba.scan_loop import scan_for_export

ort = pytest.importorskip("onnxruntime")


def test_scan_for_export_matches_the_training_scan():
    g = torch.Generator().manual_seed(0)
    L, B, G, Dg, N = 13, 2, 2, 6, 4
    u, z = torch.randn(L, B, G * Dg, generator=g), torch.randn(L, B, G * Dg, generator=g)
    delta = torch.rand(L, B, G * Dg, generator=g) * 0.5
    A = -torch.rand(G * Dg, N, generator=g) * 4
    Bm, Cm = torch.randn(L, B, G, N, generator=g), torch.randn(L, B, G, N, generator=g)
    D = torch.randn(G * Dg, generator=g)
    assert torch.allclose(scan_for_export(u, delta, A, Bm, Cm, D, z), _scan_tm(u, delta, A, Bm, Cm, D, z), atol=1e-5)


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.m = SharedBiMamba(16, d_out=12, expand=1.5)

    def forward(self, x):  # (1, L, 16) -> (1, L, 12)
        return self.m(x, torch.ones(1, dtype=torch.long) * x.shape[1])


def test_bimamba_exports_with_a_loop_and_a_dynamic_length(tmp_path):
    torch.manual_seed(0)
    block = _Block().eval()
    path = tmp_path / "bimamba.onnx"
    with torch.no_grad():
        torch.onnx.export(block, (torch.randn(1, 8, 16),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {1: "L"}, "y": {1: "L"}}, opset_version=17)  # fmt: skip
    assert loop_ops(path) == 1  # both directions in one scan, not unrolled to the traced length 8
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for L in (3, 8, 61):
        x = torch.randn(1, L, 16)
        with torch.no_grad():
            want = block(x).numpy()
        got = sess.run(None, {"x": x.numpy()})[0]
        assert got.shape == (1, L, 12) and np.allclose(got, want, atol=1e-5), (L, np.abs(got - want).max())
