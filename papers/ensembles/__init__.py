"""Reward-model ensembles against over-optimisation: Coste et al. 2023 (WCO / UWO) + Eisenstein et al. 2023."""
