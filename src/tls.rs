//! AMQPS: builds the rustls acceptor from the configured PEM files and runs the TLS handshake
//! of each accepted socket before it becomes an ordinary AMQP connection.
//!
//! The crypto provider is named explicitly (ring) instead of relying on rustls's process-wide
//! default, which is ambiguous (and panics) when feature unification enables a second provider.

use crate::config::Config;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// RabbitMQ's ssl_handshake_timeout.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A TLS connection to a client.
pub type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

fn invalid(what: &str, path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} {}: {e}", path.display()),
    )
}

fn read_certs(what: &str, path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(what, path, e))?;
    if certs.is_empty() {
        return Err(invalid(what, path, "no PEM certificate found"));
    }
    Ok(certs)
}

/// The acceptor for the AMQPS listener, or `None` when TLS is not configured. Every problem
/// with the files is an error here, at start, rather than a failure of each client handshake.
pub fn acceptor(config: &Config) -> io::Result<Option<TlsAcceptor>> {
    let (cert_path, key_path) = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) if config.tls_ca.is_none() => return Ok(None),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TLS needs both tls_cert and tls_key (tls_ca is optional and needs both)",
            ));
        }
    };
    let certs = read_certs("tls_cert", cert_path)?;
    let key =
        PrivateKeyDer::from_pem_file(key_path).map_err(|e| invalid("tls_key", key_path, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match &config.tls_ca {
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("tls_ca", ca_path)? {
                roots.add(cert).map_err(|e| invalid("tls_ca", ca_path, e))?;
            }
            // Without allow_unauthenticated() a client that sends no certificate is refused.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid("tls_ca", ca_path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let server_config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid("tls_cert/tls_key", cert_path, e))?;
    Ok(Some(TlsAcceptor::from(Arc::new(server_config))))
}

/// RabbitMQ's spelling of the negotiated version (the management API's `ssl_protocol`).
pub fn protocol_name(stream: &TlsStream) -> &'static str {
    match stream.get_ref().1.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "tlsv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "tlsv1.2",
        _ => "unknown",
    }
}

/// Runs the server side of the handshake, bounded by [`HANDSHAKE_TIMEOUT`]. Failures are logged
/// here (they concern only this socket) and give `None`.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    socket: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake_inner(acceptor, socket)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::warn!(%peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::warn!(%peer, "TLS handshake timed out after {}s", HANDSHAKE_TIMEOUT.as_secs());
            None
        }
    }
}

async fn handshake_inner(acceptor: &TlsAcceptor, mut socket: TcpStream) -> io::Result<TlsStream> {
    // A plain AMQP client on this port would get TLS alert bytes it cannot parse; name the
    // mistake in the log and close with a FIN (the header is read first, or the kernel would
    // answer with a reset) so the client sees a plain end of stream.
    let mut first = [0u8; 4];
    let n = socket.peek(&mut first).await?;
    if n > 0 && first[..n] == crate::protocol::codec::PROTOCOL_HEADER[..n] {
        let mut header = [0u8; 8];
        let _ = tokio::time::timeout(Duration::from_millis(200), socket.read(&mut header)).await;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "plain AMQP (not TLS) on the AMQPS port",
        ));
    }
    acceptor.accept(socket).await
}
