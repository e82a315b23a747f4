"""spectrascope's core: engine/ (the model's one owner), stats/, analysis/, views/ (Spec -> Report), train/.
Never imports a UI library."""
