"""The classification adapter's user error, in a module of its own so that the config (which reads the
registries of models, methods and data sets) and the modules it reads can all raise it without importing
each other."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config key or value is not valid; the message names it and says what is allowed."""
