"""Building a policy before RL: tiny models built offline, the format warm-up, and pretraining that
gives a small model eyes for the look-alike (vision facts, then descriptions)."""
