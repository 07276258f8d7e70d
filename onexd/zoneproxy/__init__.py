"""The egress proxy program that runs inside a zone proxy container (standard library only)."""
