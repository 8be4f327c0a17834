"""The demo ML system under test: a fraud model server and its feature store.

It stands for a user's own service: it imports nothing from the rest of
aftershock and is driven only over the network. See README.md here.
"""
