"""Lin et al. 2024: spurious feature diversification, WiSE-FT and BANG on the digits world."""
