"""Errors a user can act on.

Every failure caused by input (a file, a column, a config value, a CLI flag)
is raised as a ``CollabopsError`` whose message names what is wrong and
where, so the CLI can print it as is and exit non-zero without a traceback.
"""

from __future__ import annotations


class CollabopsError(Exception):
    """Base class for errors that are the user's to fix."""


class DataError(CollabopsError):
    """A data file does not meet the data contract or cannot be read."""


class ConfigError(CollabopsError):
    """A configuration file or command-line value is invalid."""


class MonitoringError(CollabopsError):
    """The monitoring cannot judge the period: no rows, no reference, an option it cannot use."""
