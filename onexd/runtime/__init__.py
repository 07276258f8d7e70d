"""Runtime: how a ContainerSpec becomes a container."""
