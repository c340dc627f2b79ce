"""Implementations of dispatch ports: in-process and Redis driver indexes."""
