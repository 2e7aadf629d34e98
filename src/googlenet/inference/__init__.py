"""Deployment: ONNX / torch.export files and the Predictor over torch, onnxruntime and OpenVINO."""
