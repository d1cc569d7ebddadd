"""The HTTP read layer (Metroculus-compatible endpoints) over the stored expenses."""
