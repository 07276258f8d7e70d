"""The daemon fixtures, shared with the systemd tests."""

from tests.daemon.conftest import daemons  # noqa: F401 - a fixture
