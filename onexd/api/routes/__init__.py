"""HTTP routes grouped by resource; each module lists its (method, path, handler) in ROUTES."""
