"""The package version (follows the API: 0.x speaks stewrd API v1)."""

__version__ = "0.1.0"
