"""TRAAC (Singh et al. 2025): adaptive, attentive compression RL for efficient reasoning."""
