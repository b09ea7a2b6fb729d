"""Keygrip inference server: gRPC front, job manager, stores, and one package per capability."""

from keygrip import __version__

__all__ = ["__version__"]
