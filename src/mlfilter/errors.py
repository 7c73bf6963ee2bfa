"""The base of every error caused by input or configuration, reported without a traceback."""


class MlfilterError(Exception):
    """Bad input, bad params or an unrecoverable external failure; the message says what and where."""
