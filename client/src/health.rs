//! Health of the private services, as this client sees them (F31).
//!
//! Each on-premises destination is probed on its own task (a TCP connect by default, or an
//! HTTP `GET` its `health_check` names), bounded by the check's timeout, so a service that
//! hangs delays nothing but its own next probe. Carried connections count too: one that
//! cannot reach the service is a failure, one that does is a success (passive checking).
//! `unhealthy_after` failures in a row make a destination unhealthy, `healthy_after`
//! successes healthy again; each change is logged, and every session of the gateway sends
//! the node the whole view, so the node gives new connections to the clients that can
//! serve them.

use crate::admission::{decide, resolve};
use crate::health_book::check_of;
use crate::registry::GatewayRuntime;
use sg_proto::acl::Acl;
use sg_proto::frame::{DestinationKind, DestinationSpec};
use sg_proto::health::{HealthCheck, HealthKind};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Longest status line read from an HTTP check's answer.
const MAX_STATUS_LINE: usize = 1024;

/// Probes the gateway's on-premises destinations until `stop`, following its configuration.
pub async fn run(gw: Arc<GatewayRuntime>, mut stop: watch::Receiver<bool>) {
    let mut config = gw.watch_config();
    let mut probes: HashMap<String, (DestinationSpec, JoinHandle<()>)> = HashMap::new();
    loop {
        let latest = config.borrow_and_update().clone();
        let wanted: Vec<DestinationSpec> = latest
            .as_deref()
            .map(|c| {
                c.destinations
                    .iter()
                    .filter(|d| d.kind == DestinationKind::OnPremises)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let ids: Vec<&str> = wanted.iter().map(|d| d.id.as_str()).collect();
        gw.health.retain(&ids);
        probes.retain(|id, (spec, task)| {
            let keep = wanted.iter().any(|d| d == spec) && ids.contains(&id.as_str());
            if !keep {
                task.abort();
            }
            keep
        });
        for d in wanted {
            if probes.contains_key(&d.id) {
                continue;
            }
            let task = tokio::spawn(probe_loop(gw.clone(), d.clone()));
            probes.insert(d.id.clone(), (d, task));
        }
        tokio::select! {
            changed = config.changed() => if changed.is_err() { break },
            _ = stop.changed() => break,
        }
    }
    for (_, (_, task)) in probes {
        task.abort();
    }
}

/// Probes one destination every interval, each probe bounded by the check's timeout.
async fn probe_loop(gw: Arc<GatewayRuntime>, dest: DestinationSpec) {
    let check = check_of(&dest);
    // Spread the first probes of many destinations over up to a second.
    let first = Duration::from_millis(rand::random::<u64>() % 1000).min(check.interval());
    tokio::time::sleep(first).await;
    let mut tick = tokio::time::interval(check.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if check.kind == HealthKind::Off && gw.health.is_healthy(&dest.id) {
            // Passive only while healthy; an unhealthy one is re-tried, or it could never
            // come back (the node sends it no connection to succeed with).
            continue;
        }
        let outcome = match tokio::time::timeout(check.timeout(), probe(&gw, &dest, &check)).await {
            Ok(Some(outcome)) => outcome,
            // The ACL does not let this client reach the address: nothing to judge.
            Ok(None) => continue,
            Err(_) => Err(format!(
                "health check: no answer within {}s",
                check.timeout_secs
            )),
        };
        gw.health.observe(&dest, outcome);
    }
}

/// One probe; `None` when the ACL refuses every address of the destination (a client's
/// checks never reach further than its streams may).
async fn probe(
    gw: &GatewayRuntime,
    dest: &DestinationSpec,
    check: &HealthCheck,
) -> Option<Result<(), String>> {
    let addresses = match resolve(&dest.resource_host, dest.resource_port, check.timeout()).await {
        Ok(a) => a,
        Err(why) => return Some(Err(why.to_string())),
    };
    let acl = gw.acl();
    let addr = addresses
        .into_iter()
        .find(|a| allowed(gw, &acl, dest, *a))?;
    let socket = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return Some(Err(format!("health check: cannot connect to {addr}: {e}"))),
    };
    if check.kind != HealthKind::Http {
        return Some(Ok(()));
    }
    Some(http_probe(gw, dest, check, socket).await)
}

fn allowed(gw: &GatewayRuntime, acl: &Acl, dest: &DestinationSpec, addr: SocketAddr) -> bool {
    decide(gw, acl, dest, addr).is_ok()
}

async fn http_probe(
    gw: &GatewayRuntime,
    dest: &DestinationSpec,
    check: &HealthCheck,
    mut socket: TcpStream,
) -> Result<(), String> {
    if let Some(version) = dest.proxy_protocol {
        // The service expects a PROXY header first: this one names the probe's own ends.
        let (Ok(local), Ok(peer)) = (socket.local_addr(), socket.peer_addr()) else {
            return Err("health check: the socket has no address".into());
        };
        let header = sg_proto::proxy_header::header(version, local, peer);
        socket
            .write_all(&header)
            .await
            .map_err(|e| format!("health check: {e}"))?;
    }
    match dest.resource_tls.as_ref().filter(|t| t.enabled) {
        None => http_exchange(dest, check, socket).await,
        Some(t) => {
            let tls = gw
                .resource_tls
                .connect(dest, t, socket, check.timeout())
                .await
                .map_err(|why| format!("health check: {why}"))?;
            http_exchange(dest, check, tls).await
        }
    }
}

/// Sends `GET path` and judges the status line: 2xx and 3xx are healthy.
async fn http_exchange<IO>(
    dest: &DestinationSpec,
    check: &HealthCheck,
    mut io: IO,
) -> Result<(), String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let host = sg_proto::hostport::host_port(&dest.resource_host, dest.resource_port);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sg-client/{} health-check\r\nConnection: close\r\n\r\n",
        check.http_path(),
        sg_proto::version::PRODUCT_VERSION
    );
    io.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("health check: {e}"))?;
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while line.len() < MAX_STATUS_LINE {
        match io.read(&mut byte).await {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(format!("health check: {e}")),
        }
    }
    judge_status_line(&line, check.http_path())
}

/// `HTTP/1.x NNN ...`: healthy for 200-399.
fn judge_status_line(line: &[u8], path: &str) -> Result<(), String> {
    let text = String::from_utf8_lossy(line);
    let mut parts = text.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("health check: GET {path} got no HTTP answer"));
    };
    let code: u16 = match (version.starts_with("HTTP/"), code.parse()) {
        (true, Ok(c)) => c,
        _ => return Err(format!("health check: GET {path} got no HTTP answer")),
    };
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("health check: GET {path} answered {code}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_judged() {
        assert!(judge_status_line(b"HTTP/1.1 200 OK\r", "/").is_ok());
        assert!(judge_status_line(b"HTTP/1.0 302 Found", "/").is_ok());
        assert!(judge_status_line(b"HTTP/1.1 503 Unavailable", "/h")
            .unwrap_err()
            .contains("503"));
        assert!(judge_status_line(b"SSH-2.0-OpenSSH", "/").is_err());
        assert!(judge_status_line(b"", "/").is_err());
        assert!(judge_status_line(b"HTTP/1.1 abc", "/").is_err());
    }
}
