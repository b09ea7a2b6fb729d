"""Keygrip inference server: gRPC front, job manager, stores and pipelines."""

from keygrip import __version__

__all__ = ["__version__"]
