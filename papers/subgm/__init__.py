"""Ma & Fattahi 2022: sub-gradient method (SubGM) for robust low-rank matrix recovery."""
