"""The bottom layer: errors, units, the plug-in interfaces and their one registry, processes,
safety, and the payload types data faults and the load share. Imports nothing above it."""
