"""Command lines: onexd and onexctl."""
