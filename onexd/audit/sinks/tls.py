"""TLS client contexts for sinks: always verifying (CA, hostname); errors mapped to ConfigError here."""

from __future__ import annotations

import ssl

from onexd.errors import ConfigError


def client_context(ca_file: str | None, cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    """A context that verifies the receiver against ca_file (or the system's CAs when None: https only; the
    config refuses tls:// syslog without a CA) and presents a client certificate when one is given."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file is not None:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"audit sink TLS files cannot be loaded ({ca_file}, {cert_file}): "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context
