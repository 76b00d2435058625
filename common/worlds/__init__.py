"""Synthetic worlds the papers run on (seeded, deterministic, cached under .cache/ when costly)."""
