//! TLS from the client to a private service (resource-side TLS, F11): the client
//! configuration each destination's settings call for, built once per gateway and rebuilt
//! when the settings change, and the handshake that carried streams and health checks
//! share.

use rustls::ClientConfig;
use sg_proto::frame::{DestinationSpec, ResourceTls};
use sg_proto::tls::{self, ServerTrust};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// TLS client configurations per destination, keyed by its id.
#[derive(Default)]
pub struct ResourceTlsCache {
    configs: Mutex<HashMap<String, (ResourceTls, Arc<ClientConfig>)>>,
}

impl ResourceTlsCache {
    /// The TLS client configuration for a destination's resource-side TLS.
    pub fn config(
        &self,
        dest: &DestinationSpec,
        t: &ResourceTls,
    ) -> Result<Arc<ClientConfig>, String> {
        let mut cache = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((spec, config)) = cache.get(&dest.id) {
            if spec == t {
                return Ok(config.clone());
            }
        }
        // An uploaded certificate is always checked: uploading one says which services to
        // trust (the service's own certificate, or the CA that signed it). Without one,
        // `reject_unauthorized` means the system's trust store, and its absence anything.
        let trust = match (&t.ca_pem, t.reject_unauthorized) {
            (Some(ca), _) => {
                ServerTrust::Uploaded(tls::certs_from_pem("ca_pem", ca).map_err(|e| e.to_string())?)
            }
            (None, true) => ServerTrust::System,
            (None, false) => ServerTrust::AcceptAny,
        };
        let identity = match (&t.client_cert_pem, &t.client_key_pem) {
            (Some(c), Some(k)) => Some((
                tls::certs_from_pem("client_cert_pem", c).map_err(|e| e.to_string())?,
                tls::key_from_pem("client_key_pem", k).map_err(|e| e.to_string())?,
            )),
            _ => None,
        };
        let config = Arc::new(tls::client_config(trust, identity).map_err(|e| e.to_string())?);
        cache.insert(dest.id.clone(), (t.clone(), config.clone()));
        Ok(config)
    }

    /// Runs the TLS handshake with the service on `socket`, within `limit`; the error says
    /// why in words (bad settings, a refused certificate, no answer).
    pub async fn connect(
        &self,
        dest: &DestinationSpec,
        t: &ResourceTls,
        socket: TcpStream,
        limit: Duration,
    ) -> Result<TlsStream<TcpStream>, String> {
        let config = self
            .config(dest, t)
            .map_err(|why| format!("TLS settings: {why}"))?;
        let name = t
            .server_name
            .clone()
            .unwrap_or_else(|| dest.resource_host.clone());
        let server_name = tls::server_name(&name).map_err(|e| e.to_string())?;
        let handshake = tokio_rustls::TlsConnector::from(config).connect(server_name, socket);
        match tokio::time::timeout(limit, handshake).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(format!(
                "TLS handshake failed: {}",
                sg_proto::service_trust::explain_handshake_error(&e)
            )),
            Err(_) => Err("no TLS handshake within the timeout".into()),
        }
    }
}
