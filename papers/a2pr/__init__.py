"""A2PR (Liu et al., ICML 2024): adaptive advantage-guided policy regularization for offline RL."""
