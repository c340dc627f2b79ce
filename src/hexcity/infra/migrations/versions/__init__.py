"""Alembic revisions, oldest first (``0001_...``); each must leave the schema equal to ``metadata``."""
