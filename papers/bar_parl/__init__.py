"""Gupta et al. 2023 (BARFI) and Chakraborty et al. 2023 (PARL): bilevel reward design."""
