"""Shipped data: prompt sets and the embedded SAEs."""
