"""Per-task glue: build data, model and loss for the shared trainer and decoding."""
