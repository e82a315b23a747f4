"""The engine: the only code that touches the model (session, model and SAE loading, the forward plan, the typed interface)."""
