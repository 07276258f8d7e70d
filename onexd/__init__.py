"""onexd: a declarative sandbox runtime daemon."""

__version__ = "0.1.0"
API_VERSION = "onexd/v1"
