"""ReBalance (Li et al. 2026): training-free balanced thinking by confidence-steered hidden states."""
