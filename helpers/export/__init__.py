"""The operated Kokoro outside PyTorch: an ONNX graph (token ids, style, speed -> audio, durations).

    scan   the selective scan as one scripted loop (an ONNX Loop), used while exporting
    onnx   export_onnx(kokoro, path): the whole model with a dynamic sequence length; OnnxKokoro runs it in
           onnxruntime; `python -m helpers.export.onnx --adapter PATH|none --out model.onnx`
"""
