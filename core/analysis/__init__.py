"""Per-view analyses built on the engine's interface: the library beneath core/views."""
