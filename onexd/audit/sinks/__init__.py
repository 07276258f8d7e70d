"""Audit sinks: one module per mechanism (file, syslog, webhook), chosen by make_sink from the config.

    Sink.send(events) -> SendResult    raises DeliveryError (or OSError) when the batch must be sent again
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

from onexd.addresses import parse_syslog_address, parse_webhook_url
from onexd.audit.sinks.base import DeliveryError, SendResult, Sink
from onexd.audit.sinks.files import FileSink
from onexd.audit.sinks.rfc5424 import SyslogFormat
from onexd.audit.sinks.syslog_sink import SyslogSink
from onexd.audit.sinks.tls import client_context
from onexd.audit.sinks.webhook import HeaderFile, WebhookSink
from onexd.sinkconfig import AuditSink

__all__ = ["DeliveryError", "FileSink", "SendResult", "Sink", "SyslogSink", "WebhookSink", "make_sink"]


def make_sink(config: AuditSink, environ: Mapping[str, str] | None = None) -> Sink:
    """The sink a validated config entry describes (the config model already refused bad entries)."""
    env = os.environ if environ is None else environ
    if config.type == "file":
        assert config.path is not None
        return FileSink(config.name, Path(config.path))
    if config.type == "webhook":
        assert config.url is not None
        endpoint = parse_webhook_url(config.url)
        tls = config.tls
        context = client_context(tls.caFile if tls else None, tls.certFile if tls else None,
                                 tls.keyFile if tls else None) if endpoint.scheme == "https" else None
        auth = None
        if config.authorization is not None:
            if config.authorization.file is not None:
                auth = HeaderFile(Path(config.authorization.file))
            else:
                creds = env.get("CREDENTIALS_DIRECTORY")
                from onexd.errors import ConfigError

                if not creds:
                    raise ConfigError(f"audit sink {config.name}: authorization.credential needs systemd's "
                                      "$CREDENTIALS_DIRECTORY (LoadCredential= in the unit)")
                auth = HeaderFile(Path(creds) / str(config.authorization.credential))
        return WebhookSink(config.name, endpoint, config.timeoutSeconds, context=context, authorization=auth,
                           server_name=tls.serverName if tls else None)
    assert config.address is not None
    endpoint = parse_syslog_address(config.address)
    fmt = SyslogFormat(hostname=socket.gethostname() or "-", sd_id=config.sdId, max_bytes=config.maxMessageBytes,
                       style=config.syslog_format, procid=str(os.getpid()))
    context = None
    if endpoint.scheme == "tls":
        assert config.tls is not None  # the model refuses tls:// without a CA: never the system's by default
        assert config.tls.caFile is not None
        context = client_context(config.tls.caFile, config.tls.certFile, config.tls.keyFile)
    return SyslogSink(config.name, endpoint, fmt, framing=config.framing, timeout_s=config.timeoutSeconds,
                      context=context, server_name=config.tls.serverName if config.tls else None)
