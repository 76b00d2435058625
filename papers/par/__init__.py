"""Fu et al. 2025, Reward Shaping to Mitigate Reward Hacking in RLHF (Preference As Reward, PAR)."""
