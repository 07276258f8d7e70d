"""HTTP API over the Unix socket: routes, bodies, error mapping, OpenAPI."""
