"""Faults of the model lifecycle: what happens to a model between training and serving."""
