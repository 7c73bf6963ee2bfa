"""Subcommands of the ``mlfilter`` command line, one module each."""
