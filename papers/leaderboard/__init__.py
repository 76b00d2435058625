"""One leaderboard of every RLHF method of the project on the shared preference world (not a paper)."""
