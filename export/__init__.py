"""Checkpoint -> optimized ONNX folder (`qa-export`)."""
