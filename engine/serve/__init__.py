"""qa-serve: the answering engine as an HTTP service, with dynamic batching."""
