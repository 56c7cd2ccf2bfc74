"""Exceptions the CLI turns into one clear line and a non-zero exit.

Every message names the thing that is wrong and the fix. The library raises these; only the CLI prints them.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (config, files, URLs). The message is one line: what and how to fix it."""

    exit_code = 2


class ConfigError(UserError):
    """The YAML config is missing, unreadable or invalid."""


class SourceError(UserError):
    """The configured source (STAC API, index file) cannot be used."""


class ArchiveError(UserError):
    """The embedded local archive is missing, stale or cannot be served."""


class StalledError(TimeoutError):
    """No task of a run finished within its deadline (a stall, not a long run). Finished work is kept."""

    exit_code = 3
