"""Architecture search drivers: PPO controller for MnasFPN heads and MSNAS evolution."""
