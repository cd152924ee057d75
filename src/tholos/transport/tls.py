"""Mutual-TLS credentials for gRPC (nodes) and HTTPS (gateway REST API), pinned to the cluster CA."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one party: the pinned CA, its own certificate and private key."""

    ca: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()


def grpc_server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """Server side: present our certificate, require a client certificate signed by the CA."""
    ca, cert, key = files.read()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def grpc_channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """Client side: trust only the cluster CA, present our client certificate."""
    ca, cert, key = files.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def server_ssl_context(files: TlsFiles) -> ssl.SSLContext:
    """HTTPS server context for the REST API: client certificates from the CA are required."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files.ca))
    ctx.load_cert_chain(str(files.cert), str(files.key))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def client_ssl_context(files: TlsFiles) -> ssl.SSLContext:
    """HTTPS client context: pin the CA, present the client certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(files.ca))
    ctx.load_cert_chain(str(files.cert), str(files.key))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
