//! sgctl's output: aligned tables for people, the API's JSON with `--json` for scripts, ids
//! with `-q`. Tables read the typed views of sg-api, so a renamed field fails the build
//! instead of printing `-`; `--json` prints what the node sent, newer fields included.

use serde_json::Value;
use sg_api::clients::{ClientState, ClientView, GatewayStats, Killed};
use sg_api::destinations::DestinationView;
use sg_api::events::EventView;
use sg_api::gateways::{AclView, GatewayView, TokenView};
use sg_api::node::{Healthz, LogLevelView, NodeView, PlanView};
use std::fmt::Display;

/// An answer: the JSON as the node sent it and its typed reading.
pub struct Answer<T> {
    pub raw: Value,
    pub view: T,
}

/// What `-q` prints for an item.
pub trait Ids {
    fn ids(&self) -> Vec<&str>;
}

impl Ids for GatewayView {
    fn ids(&self) -> Vec<&str> {
        vec![&self.id]
    }
}
impl Ids for DestinationView {
    fn ids(&self) -> Vec<&str> {
        vec![&self.id]
    }
}
impl Ids for ClientView {
    fn ids(&self) -> Vec<&str> {
        vec![&self.client_id]
    }
}
impl Ids for NodeView {
    fn ids(&self) -> Vec<&str> {
        vec![&self.id]
    }
}
impl Ids for Killed {
    fn ids(&self) -> Vec<&str> {
        vec![&self.client_id]
    }
}
impl Ids for GatewayStats {
    fn ids(&self) -> Vec<&str> {
        vec![&self.gateway_id]
    }
}
/// Answers without ids print nothing under `-q`.
macro_rules! no_ids {
    ($($t:ty),*) => {$(impl Ids for $t { fn ids(&self) -> Vec<&str> { Vec::new() } })*};
}
no_ids!(
    EventView,
    AclView,
    PlanView,
    LogLevelView,
    Healthz,
    TokenView
);
impl<T: Ids> Ids for Vec<T> {
    fn ids(&self) -> Vec<&str> {
        self.iter().flat_map(Ids::ids).collect()
    }
}

/// `s` safe to print on a terminal: control characters (escape sequences among them,
/// which a stranger can put into a client version that lands in an event) are shown as
/// `\u{..}`, never sent.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A cell: text made printable.
fn cell(v: impl Display) -> String {
    printable(&v.to_string())
}

/// A cell that may be empty.
fn opt<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), cell)
}

/// An enum cell: the API's own spelling.
fn word<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => "-".into(),
    }
}

fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        line(r);
    }
}

/// Key/value lines.
fn pairs(items: &[(&str, String)]) {
    let w = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in items {
        println!("{k:<w$}  {v}");
    }
}

/// What `gateway clients` adds after the columns: the destinations a connected client
/// cannot reach, or when and why a client went.
fn client_notes(c: &ClientView) -> String {
    if c.state == ClientState::Disconnected {
        return format!("gone {}: {}", opt(&c.disconnected_at), opt(&c.reason));
    }
    let unhealthy: Vec<String> = c
        .destinations
        .iter()
        .filter(|d| !d.healthy)
        .map(|d| {
            format!(
                "{} unhealthy ({})",
                cell(&d.destination_id),
                cell(&d.reason)
            )
        })
        .collect();
    unhealthy.join("; ")
}

pub struct Printer {
    pub json: bool,
    /// Ids only (`-q`).
    pub quiet: bool,
}

impl Printer {
    /// Prints the answer as JSON (`--json`) or as ids (`-q`); false when a table is wanted.
    fn raw<T: Ids>(&self, a: &Answer<T>) -> bool {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&a.raw).unwrap_or_default()
            );
        } else if self.quiet {
            for id in a.view.ids() {
                println!("{}", printable(id));
            }
        }
        self.json || self.quiet
    }

    pub fn done(&self, message: &str) {
        if self.json {
            println!("{{}}");
        } else if !self.quiet {
            println!("{message}");
        }
    }

    pub fn health(&self, a: &Answer<Healthz>) {
        if self.raw(a) {
            return;
        }
        let h = &a.view;
        pairs(&[
            ("status", word(&h.status)),
            ("region", cell(&h.region)),
            ("node_id", cell(&h.node_id)),
            ("version", cell(&h.version)),
            ("store", word(&h.store)),
        ]);
    }

    pub fn log_level(&self, a: &Answer<LogLevelView>) {
        if self.raw(a) {
            return;
        }
        pairs(&[
            ("log_level", cell(&a.view.log_level)),
            ("filters", opt(&a.view.filters)),
        ]);
    }

    pub fn created_gateway(&self, a: &Answer<GatewayView>) {
        let g = &a.view;
        if self.quiet {
            // The token is shown this once: even -q keeps it.
            println!("{}\t{}", cell(&g.id), opt(&g.token));
            return;
        }
        if self.raw(a) {
            return;
        }
        println!("created gateway {} ({})", cell(&g.id), cell(&g.name));
        println!("token: {}", opt(&g.token));
        println!("       shown only now: keep it; `sgctl gateway token ID` issues a new one");
        println!("token expires: {}", cell(&g.token_expires_at));
    }

    pub fn gateway(&self, a: &Answer<GatewayView>) {
        if self.raw(a) {
            return;
        }
        let g = &a.view;
        pairs(&[
            ("id", cell(&g.id)),
            ("name", cell(&g.name)),
            ("active", cell(g.active)),
            ("enabled", cell(g.enabled)),
            ("token_expires_at", cell(&g.token_expires_at)),
            ("token_expired", cell(g.token_expired)),
            ("created_at", cell(&g.created_at)),
        ]);
    }

    pub fn gateways(&self, a: &Answer<Vec<GatewayView>>) {
        if self.raw(a) {
            return;
        }
        let rows = a
            .view
            .iter()
            .map(|g| {
                vec![
                    cell(&g.id),
                    cell(&g.name),
                    cell(g.active),
                    cell(g.enabled),
                    cell(&g.token_expires_at),
                ]
            })
            .collect();
        table(
            &["id", "name", "active", "enabled", "token_expires_at"],
            rows,
        );
    }

    pub fn token(&self, id: &str, a: &Answer<TokenView>) {
        let t = &a.view;
        if self.quiet {
            println!("{}", cell(&t.token));
            return;
        }
        if self.raw(a) {
            return;
        }
        println!("new token for gateway {id}: {}", cell(&t.token));
        println!("the old token no longer works; clients using it were disconnected");
        println!("token expires: {}", cell(&t.token_expires_at));
    }

    pub fn destination(&self, a: &Answer<DestinationView>) {
        if self.raw(a) {
            return;
        }
        let d = &a.view;
        let rules: Vec<String> = d
            .ip_rules
            .iter()
            .map(|r| match &r.ports {
                Some(p) => format!("{} ports {}", cell(&r.cidr), cell(p)),
                None => cell(&r.cidr),
            })
            .collect();
        let mut tls = word(&d.cloud_tls.mode);
        if let Some(fp) = &d.cloud_tls.cert_fingerprint {
            tls.push_str(&format!(", certificate {}", cell(fp)));
            if d.cloud_tls.issued_by_node {
                tls.push_str(" (issued by the node's CA)");
            }
        }
        pairs(&[
            ("id", cell(&d.id)),
            ("gateway_id", cell(&d.gateway_id)),
            ("name", cell(&d.name)),
            ("type", word(&d.kind)),
            ("resource_host", cell(&d.resource_host)),
            ("resource_port", cell(d.resource_port)),
            ("protocol", word(&d.protocol)),
            ("cloud_host", cell(&d.cloud_host)),
            ("cloud_port", opt(&d.cloud_port)),
            ("client_port", opt(&d.client_port)),
            ("active", cell(d.active)),
            ("enabled", cell(d.enabled)),
            (
                "ip_rules",
                if rules.is_empty() {
                    "- (anyone)".into()
                } else {
                    rules.join(", ")
                },
            ),
            ("cloud_tls", tls),
        ]);
        if let Some(e) = &d.listen_error {
            println!("warning: {}", cell(e));
        }
    }

    pub fn destinations(&self, a: &Answer<Vec<DestinationView>>) {
        if self.raw(a) {
            return;
        }
        let rows = a
            .view
            .iter()
            .map(|d| {
                vec![
                    cell(&d.id),
                    cell(&d.name),
                    format!("{}:{}", cell(&d.resource_host), d.resource_port),
                    match (d.cloud_port, d.client_port) {
                        (None, None) => "-".into(),
                        (None, Some(p)) => format!("client port {p}"),
                        (Some(p), _) => format!("{}:{p}", cell(&d.cloud_host)),
                    },
                    cell(d.active),
                    cell(d.enabled),
                ]
            })
            .collect();
        table(
            &["id", "name", "resource", "cloud", "active", "enabled"],
            rows,
        );
    }

    pub fn clients(&self, a: &Answer<Vec<ClientView>>) {
        if self.raw(a) {
            return;
        }
        let rows = a
            .view
            .iter()
            .map(|c| {
                vec![
                    cell(&c.client_id),
                    word(&c.state),
                    cell(&c.version),
                    cell(&c.address),
                    cell(&c.node_id),
                    cell(c.sessions),
                    cell(c.active_streams),
                    cell(&c.connected_at),
                    client_notes(c),
                ]
            })
            .collect();
        table(
            &[
                "client_id",
                "state",
                "version",
                "address",
                "node_id",
                "sessions",
                "active_streams",
                "connected_at",
                "notes",
            ],
            rows,
        );
    }

    pub fn killed(&self, a: &Answer<Killed>) {
        if self.raw(a) {
            return;
        }
        let k = &a.view;
        println!(
            "client {} ended ({} session(s) closed): {}",
            cell(&k.client_id),
            k.sessions_closed,
            cell(&k.reason)
        );
    }

    pub fn stats(&self, a: &Answer<GatewayStats>) {
        if self.raw(a) {
            return;
        }
        let s = &a.view;
        pairs(&[
            ("gateway_id", cell(&s.gateway_id)),
            ("clients", cell(s.clients)),
            ("active_connections", cell(s.active_connections)),
            ("total_connections", cell(s.total_connections)),
            ("refused_connections", cell(s.refused_connections)),
            ("bytes_to_resources", cell(s.bytes_to_resources)),
            ("bytes_to_cloud", cell(s.bytes_to_cloud)),
            ("max_connections", cell(s.max_connections)),
        ]);
        if !s.unreachable_nodes.is_empty() {
            println!(
                "warning: node(s) {} did not answer; their part is missing",
                cell(s.unreachable_nodes.join(", "))
            );
        }
    }

    pub fn events(&self, a: &Answer<Vec<EventView>>) {
        if self.raw(a) {
            return;
        }
        let rows = a
            .view
            .iter()
            .map(|e| {
                vec![
                    cell(&e.at),
                    cell(&e.region),
                    word(&e.kind),
                    cell(&e.message),
                ]
            })
            .collect();
        table(&["at", "region", "kind", "message"], rows);
    }

    pub fn nodes(&self, a: &Answer<Vec<NodeView>>) {
        if self.raw(a) {
            return;
        }
        let rows = a
            .view
            .iter()
            .map(|n| {
                vec![
                    // Mark the node that answered.
                    if n.this_node {
                        format!("{} *", cell(&n.id))
                    } else {
                        cell(&n.id)
                    },
                    cell(&n.region),
                    cell(&n.tunnel),
                    cell(&n.api),
                    cell(&n.version),
                    cell(n.draining),
                ]
            })
            .collect();
        table(
            &["id", "region", "tunnel", "api", "version", "draining"],
            rows,
        );
    }

    pub fn acl(&self, a: &Answer<AclView>) {
        if self.raw(a) {
            return;
        }
        for r in &a.view.rules {
            println!("{}", cell(r));
        }
        println!("({})", cell(&a.view.unnamed_targets_text));
    }

    pub fn plan(&self, a: &Answer<PlanView>) {
        if self.raw(a) {
            return;
        }
        let p = &a.view;
        pairs(&[
            ("max_gateways", cell(p.max_gateways)),
            ("max_destinations", cell(p.max_destinations)),
            (
                "max_connections_per_gateway",
                cell(p.max_connections_per_gateway),
            ),
            ("max_clients_per_gateway", cell(p.max_clients_per_gateway)),
        ]);
        println!(
            "usage: {} active gateway(s), {} active destination(s)",
            p.usage.active_gateways, p.usage.active_destinations
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_sent() {
        let c = cell("ok \u{1b}[2J\u{1b}]0;owned\u{7}\r done");
        assert!(!c.chars().any(char::is_control), "{c:?}");
        assert!(c.contains("\\u{1b}[2J"), "{c}");
        assert_eq!(cell("plain é"), "plain é");
        assert_eq!(opt(&None::<String>), "-");
    }
}
