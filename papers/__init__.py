"""One package per reproduced paper; see `papers.registry` for the list."""
