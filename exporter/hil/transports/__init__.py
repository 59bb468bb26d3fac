"""Transports: how edgex reaches a device. Each module registers one Transport class."""
