"""Faults on the model lifecycle around serving: rollouts of new model versions, tampered artifacts."""
