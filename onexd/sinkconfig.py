"""Audit sink settings of the daemon config (`audit.sinks`): each sink's requirements, checked when the config is
read, so `onexd config validate` and `onexd serve` refuse a bad sink before anything is written."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from onexd.addresses import parse_syslog_address, parse_webhook_url
from onexd.fields import AbsPath, Model, Name

# Field validators run in declaration order and see the fields above them.

SinkType = Literal["file", "syslog", "webhook"]
_USED_BY: dict[str, SinkType] = {"path": "file", "address": "syslog", "url": "webhook"}
_SD_ID = r"^[!#-<>-\\^-~]{1,32}$"  # RFC 5424 SD-NAME: printable ASCII except '=', ' ', ']', '"'
UDP_MAX_MESSAGE_BYTES = 65_000  # below the 65,507-byte IPv4 datagram limit, with room for headers


class SinkTls(Model):
    caFile: AbsPath | SkipJsonSchema[None] = Field(
        default=None, description="CA bundle (PEM) the receiver's certificate must chain to (required for tls://; "
                                  "https:// uses the system's CAs without it).")
    certFile: AbsPath | SkipJsonSchema[None] = Field(default=None, description="Client certificate (PEM).")
    keyFile: AbsPath | SkipJsonSchema[None] = Field(default=None, description="Client private key (PEM).")
    serverName: str | SkipJsonSchema[None] = Field(
        default=None, description="Name the certificate must carry (default: the address's host).")

    @model_validator(mode="after")
    def _pair(self) -> SinkTls:
        if (self.certFile is None) != (self.keyFile is None):
            raise ValueError("certFile and keyFile go together")
        return self


class SinkAuthorization(Model):
    file: AbsPath | SkipJsonSchema[None] = Field(
        default=None, description="File holding the Authorization header value (e.g. `Bearer ...`).")
    credential: Name | SkipJsonSchema[None] = Field(
        default=None, description="systemd credential ($CREDENTIALS_DIRECTORY/NAME) holding the value.")

    @model_validator(mode="after")
    def _one(self) -> SinkAuthorization:
        if (self.file is None) == (self.credential is None):
            raise ValueError("set exactly one of file or credential")
        return self


class AuditSink(Model):
    name: Name = Field(description="Unique per daemon: the sink's cursor, metrics and logs use it.")
    type: SinkType = Field(description="file, syslog or webhook.")
    path: AbsPath | SkipJsonSchema[None] = Field(default=None, validate_default=True,
                                                 description="file: the JSON Lines file appended to.")
    url: str | SkipJsonSchema[None] = Field(
        default=None, validate_default=True, description="webhook: http(s)://host[:port]/path, no credentials.")
    address: str | SkipJsonSchema[None] = Field(
        default=None, validate_default=True,
        description="syslog: unix:///dev/log, udp://host:port, tcp://host:port or tls://host:port.")
    batchSize: int = Field(default=500, ge=1, le=100_000, description="Most events per batch (one connection).")
    timeoutSeconds: float = Field(default=10.0, gt=0, le=300, description="Per connection and batch.")
    delivery: Literal["at-least-once", "best-effort"] = Field(
        default="at-least-once", validate_default=True,
        description="best-effort (required for, and only for, udp://): sends are counted, losses are not retried.")
    framing: Literal["octet-counting", "lf"] = Field(
        default="octet-counting", description="syslog over tcp/tls: RFC 6587 octet counting or LF-terminated.")
    format: Literal["rfc5424", "local", "journal"] | SkipJsonSchema[None] = Field(
        default=None, validate_default=True,
        description="syslog: rfc5424; local (what /dev/log readers parse; the default for unix://); journal "
                    "(journald's native protocol on unix:///run/systemd/journal/socket).")
    sdId: Annotated[str, StringConstraints(pattern=_SD_ID)] = Field(
        default="onexd@0", description="SD-ID of the structured data element; set your enterprise number.")
    maxMessageBytes: int = Field(default=8192, ge=1024, le=1024 * 1024, validate_default=True,
                                 description="syslog: larger events are truncated with a marker (seq, hash).")
    tls: SinkTls | SkipJsonSchema[None] = Field(
        default=None, validate_default=True,
        description="tls:// (required, with caFile) and https:// (optional CA and client certificate).")
    authorization: SinkAuthorization | SkipJsonSchema[None] = Field(
        default=None, validate_default=True, description="webhook: Authorization header, from a file or credential.")

    @field_validator("path", "url", "address")
    @classmethod
    def _used_by_its_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        owner, kind = _USED_BY[info.field_name or ""], info.data.get("type")
        if kind is None:
            return value
        if kind != owner and value is not None:
            raise ValueError(f"not used by type {kind} (only by type {owner})")
        if kind == owner and value is None:
            raise ValueError(f"type {kind} needs `{info.field_name}`")
        if value is not None and info.field_name == "address":
            parse_syslog_address(value)
        if value is not None and info.field_name == "url":
            parse_webhook_url(value)
        return value

    @field_validator("delivery")
    @classmethod
    def _udp_is_best_effort(cls, value: str, info: ValidationInfo) -> str:
        udp = str(info.data.get("address") or "").startswith("udp://")
        if udp and value != "best-effort":
            raise ValueError("udp:// cannot deliver at least once; set `delivery: best-effort` to accept losses")
        if not udp and value == "best-effort":
            raise ValueError("best-effort is only for udp:// syslog sinks")
        return value

    @field_validator("format")
    @classmethod
    def _format_for_syslog(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("type") != "syslog":
            raise ValueError("only syslog sinks have a format")
        if value in ("local", "journal") and not str(info.data.get("address") or "unix://").startswith("unix://"):
            raise ValueError(f"format {value} is for unix:// sinks (the local logger)")
        return value

    @field_validator("maxMessageBytes")
    @classmethod
    def _fits_a_datagram(cls, value: int, info: ValidationInfo) -> int:
        if str(info.data.get("address") or "").startswith("udp://") and value > UDP_MAX_MESSAGE_BYTES:
            raise ValueError(f"a udp:// message cannot exceed {UDP_MAX_MESSAGE_BYTES} bytes")
        return value

    @field_validator("tls")
    @classmethod
    def _tls_where_it_applies(cls, value: SinkTls | None, info: ValidationInfo) -> SinkTls | None:
        target = str(info.data.get("address") or info.data.get("url") or "")
        if target.startswith("tls://") and (value is None or value.caFile is None):
            raise ValueError("tls:// needs `tls: {caFile}`: onexd never falls back to an unverified connection")
        if value is not None and not target.startswith(("tls://", "https://")):
            raise ValueError("only tls:// syslog and https:// webhook sinks use tls")
        return value

    @field_validator("authorization")
    @classmethod
    def _authorization_for_webhooks(cls, value: SinkAuthorization | None,
                                    info: ValidationInfo) -> SinkAuthorization | None:
        if value is not None and info.data.get("type") != "webhook":
            raise ValueError("only webhook sinks send an Authorization header")
        return value

    @property
    def syslog_format(self) -> Literal["rfc5424", "local", "journal"]:
        return self.format or ("local" if str(self.address).startswith("unix://") else "rfc5424")
