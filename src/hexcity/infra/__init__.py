"""Shared technical plumbing: logging and settings base."""

from hexcity.infra.logging import configure_logging, get_logger

__all__ = ["configure_logging", "get_logger"]
