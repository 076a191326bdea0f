"""The agent: makes images resident on the compute host it runs on."""
