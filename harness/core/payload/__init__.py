"""The payload stream data faults act on: their base class, control channel, and measurements."""
