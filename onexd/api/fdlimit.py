"""Room for `api.maxConnections`: each connection holds a file descriptor, so the daemon's open-file limit must
leave that many plus what the daemon itself opens (state, audit, keys, the runtime). Past its limit accept()
fails, the daemon stops answering everyone (even /version) and every file it opens fails; so at start the soft
limit is raised towards the hard one if needed, and a daemon whose hard limit is too low is refused before it
writes anything (with the field named, as a bad config is).
"""

from __future__ import annotations

import logging
import resource

from onexd.errors import ConfigError

log = logging.getLogger("onexd.api")
# The daemon's own files besides API connections: 15 at rest on the fake runtime, up to 32 lingering refusals
# (server.py) per listener, 16 metrics connections, and room for jobs and reloads.
RESERVED_FILES = 128


def soft_limit_needed(max_connections: int, soft: int, hard: int) -> int | None:
    """The soft open-file limit to set for max_connections (None: the current one leaves room); ConfigError when
    even the hard limit does not."""
    needed = max_connections + RESERVED_FILES
    unlimited = resource.RLIM_INFINITY
    if soft == unlimited or soft >= needed:
        return None
    if hard != unlimited and hard < needed:
        raise ConfigError(f"field api.maxConnections: {max_connections} connections need {needed} open files, "
                          f"but the daemon may open at most {hard} (raise LimitNOFILE= in the unit, or lower "
                          "api.maxConnections)")
    return needed


def make_room_for_connections(max_connections: int) -> None:
    """Raise the soft open-file limit so max_connections fit (ConfigError when the hard limit is too low)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = soft_limit_needed(max_connections, soft, hard)
    if target is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log.info("open-file limit raised for api.maxConnections", extra={"from": soft, "to": target})
