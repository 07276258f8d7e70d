"""Syslog messages of audit events, pure: RFC 5424 for network receivers, the local BSD-style line that
/dev/log readers (rsyslog's imuxsock, syslog-ng's system(), journald) parse, journald's native protocol (one
datagram of FIELD=value lines), and RFC 6587 framing.

An event larger than the sink's limit is not cut mid-JSON: its MSG is replaced by a marker naming the seq, type,
hash and full size, so a reader fetches the whole event from `GET /v1/audit?since=<seq-1>&limit=1`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from onexd.timestamps import utc

MSGID_MAX = 32  # RFC 5424 section 6.2.7
NILVALUE = "-"


@dataclass(frozen=True, slots=True)
class SyslogFormat:
    hostname: str
    sd_id: str = "onexd@0"
    max_bytes: int = 8192
    style: Literal["rfc5424", "local", "journal"] = "rfc5424"
    app: str = "onexd"
    procid: str = NILVALUE


def severity(event: dict[str, Any]) -> int:
    """Info (6) for successes, warning (4) for failures and denials."""
    return 6 if event.get("outcome") in (None, "success", "allowed") else 4


def priority(event: dict[str, Any]) -> int:
    return 13 * 8 + severity(event)  # facility 13: log audit


def msgid(event_type: object) -> str:
    """The event type as an RFC 5424 MSGID (printable ASCII, at most 32 characters): a type too long loses its
    leading dotted component first (`key.secret-store-data-key-rotated` -> `secret-store-data-key-rotated`),
    then its tail. The full type is always in the structured data."""
    text = "".join(c for c in str(event_type or NILVALUE) if 33 <= ord(c) <= 126) or NILVALUE
    if len(text) > MSGID_MAX and "." in text:
        text = text.split(".", 1)[1]
    return text[:MSGID_MAX]


def sd_value(value: object) -> str:
    """A PARAM-VALUE: `"`, `\\` and `]` escaped (RFC 5424 section 6.3.3)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _body(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"))


def _marker(event: dict[str, Any], size: int) -> str:
    seq = int(event["seq"])
    return json.dumps({"truncated": True, "seq": seq, "type": event.get("type"), "hash": event.get("hash"),
                       "bytes": size, "fetch": f"/v1/audit?since={seq - 1}&limit=1"},
                      sort_keys=True, separators=(",", ":"))


def _timestamp(event: dict[str, Any]) -> str:
    ts = event.get("ts")
    return str(ts) if ts else utc(time.time())


def _rfc5424(event: dict[str, Any], fmt: SyslogFormat, msg: str, truncated: int | None) -> str:
    params = (f'seq="{int(event["seq"])}" type="{sd_value(event.get("type"))}" '
              f'outcome="{sd_value(event.get("outcome"))}" hash="{sd_value(event.get("hash", ""))}"')
    if truncated is not None:
        params += f' truncated="true" bytes="{truncated}"'
    return (f"<{priority(event)}>1 {_timestamp(event)} {fmt.hostname} {fmt.app} {fmt.procid} "
            f"{msgid(event.get('type'))} [{fmt.sd_id} {params}] {msg}")


def _local(event: dict[str, Any], fmt: SyslogFormat, msg: str, truncated: int | None) -> str:
    # RFC 3164 shape, what local loggers parse: "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG" (UTC, no year).
    try:
        when = datetime.fromisoformat(_timestamp(event).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        when = datetime.now(UTC)
    stamp = f"{when:%b} {when.day:2d} {when:%H:%M:%S}"
    pid = f"[{fmt.procid}]" if fmt.procid != NILVALUE else ""
    return f"<{priority(event)}>{stamp} {fmt.app}{pid}: {msg}"


def _field(value: object) -> str:
    return " ".join(str(value).split())  # one line: the simple FIELD=value form of the native protocol


def _journal(event: dict[str, Any], fmt: SyslogFormat, msg: str, truncated: int | None) -> str:
    # journald's native protocol: the event's identity as journal fields (journalctl ONEXD_SEQ=42 finds it),
    # the JSON as MESSAGE. Field names: uppercase letters, digits and underscores.
    fields = {"MESSAGE": msg, "PRIORITY": severity(event), "SYSLOG_FACILITY": 13, "SYSLOG_IDENTIFIER": fmt.app,
              "ONEXD_SEQ": int(event["seq"]), "ONEXD_TYPE": event.get("type"), "ONEXD_OUTCOME": event.get("outcome"),
              "ONEXD_HASH": event.get("hash", ""), "ONEXD_PRINCIPAL": event.get("principal") or NILVALUE}
    if fmt.procid != NILVALUE:
        fields["SYSLOG_PID"] = fmt.procid
    if truncated is not None:
        fields["ONEXD_TRUNCATED_BYTES"] = truncated
    return "".join(f"{k}={_field(v)}\n" for k, v in fields.items())


def format_event(event: dict[str, Any], fmt: SyslogFormat) -> bytes:
    """One message, at most fmt.max_bytes long: the event's JSON, or the truncation marker when it is larger."""
    render = {"local": _local, "journal": _journal}.get(fmt.style, _rfc5424)
    full = render(event, fmt, _body(event), None).encode()
    if len(full) <= fmt.max_bytes:
        return full
    return render(event, fmt, _marker(event, len(full)), len(full)).encode()[:fmt.max_bytes]


def frame(message: bytes, framing: Literal["octet-counting", "lf"]) -> bytes:
    """RFC 6587: `LEN SP MSG` (octet counting) or `MSG LF` (the JSON body never holds a raw LF)."""
    if framing == "lf":
        return message.replace(b"\n", b" ") + b"\n"
    return str(len(message)).encode() + b" " + message
