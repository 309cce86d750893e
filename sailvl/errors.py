"""User-facing error type: the CLI prints its message as one line and exits non-zero."""


class SailvlError(Exception):
    """A mistake in user input (file, config, argument). The message is one clear sentence."""


class ConfigError(SailvlError, ValueError):
    """A config key is unknown or has the wrong type; the message names the dotted key."""
