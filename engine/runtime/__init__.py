"""Answering: `QAEngine`, its options, the batching rule, the tokenize-ahead thread, results, and the backends
(ONNX Runtime, torch) that run a batch of windows."""
