"""Learning from crowds with a network: the one training loop, the papers' networks, deep crowd models."""
