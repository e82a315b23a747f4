"""Shared maths: sampling and its knobs, null models, confound checks."""
