"""Audit: the hash-chained trail, signed checkpoints, verification, shipping to sinks."""
