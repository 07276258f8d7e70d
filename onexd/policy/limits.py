"""Floors and ceilings of every resource limit of a SandboxProfile, and the size types that carry them.

A value outside them is refused at load: the engine must never receive a value it reads as "unlimited".
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, WithJsonSchema

from onexd.fields import SIZE_PATTERN, parse_size

# Floors and ceilings of every limit. A value outside them is refused at load: the engine must never receive a
# value it reads as "unlimited" (NanoCpus 0, Memory -1 or near 2^63, PidsLimit <= 0), and a job's captured
# output is buffered in the daemon's memory. The numbers are documented in docs/rules.md (security/limit-range).
MEMORY_MIN_BYTES = 6 * 1024**2  # Docker refuses less than 6 MiB
MEMORY_MAX_BYTES = 256 * 1024**3
CPUS_MIN = 0.01  # Docker's own granularity; NanoCpus never rounds to 0
CPUS_MAX = 256.0
PIDS_MIN, PIDS_MAX = 1, 65536
NOFILE_MIN, NOFILE_MAX = 8, 1048576
TIMEOUT_MIN_S, TIMEOUT_MAX_S = 1, 86400
OUTPUT_MIN_BYTES = 1024
OUTPUT_MAX_BYTES = 64 * 1024**2
TMPFS_MIN_BYTES = 4096
TMPFS_MAX_BYTES = 64 * 1024**3
# runc refuses ids above 2^31-1; (uid_t)-1 and wrapped values must never reach it.
ID_MIN, ID_MAX = 1, 2**31 - 1


def _size_schema(low: int, high: int, what: str) -> WithJsonSchema:
    """The schema of a Size with a floor and a ceiling."""
    return WithJsonSchema({
        "description": f"{what}: an integer number of bytes from {low} to {high}, or a string with a "
                       "binary suffix (`512Ki`, `64Mi`, `1Gi`) within the same range.",
        "anyOf": [{"type": "integer", "minimum": low, "maximum": high},
                  {"type": "string", "pattern": SIZE_PATTERN}],
    })


MemorySize = Annotated[int, BeforeValidator(parse_size), Field(ge=MEMORY_MIN_BYTES, le=MEMORY_MAX_BYTES),
                       _size_schema(MEMORY_MIN_BYTES, MEMORY_MAX_BYTES, "Memory")]
OutputSize = Annotated[int, BeforeValidator(parse_size), Field(ge=OUTPUT_MIN_BYTES, le=OUTPUT_MAX_BYTES),
                       _size_schema(OUTPUT_MIN_BYTES, OUTPUT_MAX_BYTES, "Output")]
TmpfsSize = Annotated[int, BeforeValidator(parse_size), Field(ge=TMPFS_MIN_BYTES, le=TMPFS_MAX_BYTES),
                      _size_schema(TMPFS_MIN_BYTES, TMPFS_MAX_BYTES, "tmpfs size")]
