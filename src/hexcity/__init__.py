"""hexcity: the backend of an on-demand super-app as one runnable system."""

__version__ = "0.1.0"
