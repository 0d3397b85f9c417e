"""The operated Kokoro outside PyTorch: an ONNX graph (token ids, style, speed -> audio, durations).

    onnx   export_onnx(kokoro, path): the whole model with a dynamic sequence length; OnnxKokoro runs it in
           onnxruntime; `python -m helpers.export.onnx --adapter PATH|none --out model.onnx`

The selective scan exports as one ONNX Loop through `helpers.mamba.scan_loop` (the Mamba room).
"""
