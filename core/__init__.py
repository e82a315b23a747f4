"""spectrascope engine: model, SAEs, sampling, contrast, steering. Never imports a UI library."""
