//! sgctl's output: aligned tables for people, the API's JSON with `--json` for scripts.

use serde_json::Value;

pub struct Printer {
    pub json: bool,
    /// Ids only (`-q`).
    pub quiet: bool,
}

/// The id of an answer item: `id`, or a client's `client_id`.
fn id_of(v: &Value) -> Option<&str> {
    v["id"].as_str().or_else(|| v["client_id"].as_str())
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => printable(s),
        other => other.to_string(),
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

fn rows(v: &Value, keys: &[&str]) -> Vec<Vec<String>> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| keys.iter().map(|k| text(&item[*k])).collect())
                .collect()
        })
        .unwrap_or_default()
}

/// What `gateway clients` adds after the columns: the destinations a connected client
/// cannot reach, or when and why a client went.
fn client_notes(c: &Value) -> String {
    if c["state"].as_str() == Some("disconnected") {
        return format!(
            "gone {}: {}",
            text(&c["disconnected_at"]),
            text(&c["reason"])
        );
    }
    let unhealthy: Vec<String> = c["destinations"]
        .as_array()
        .map(|ds| {
            ds.iter()
                .filter(|d| d["healthy"].as_bool() == Some(false))
                .map(|d| {
                    format!(
                        "{} unhealthy ({})",
                        text(&d["destination_id"]),
                        text(&d["reason"])
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    unhealthy.join("; ")
}

impl Printer {
    /// Prints `v` as JSON (`--json`) or as ids (`-q`); false when a table is wanted.
    fn raw(&self, v: &Value) -> bool {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else if self.quiet {
            let items: Vec<&Value> = match v.as_array() {
                Some(list) => list.iter().collect(),
                None => vec![v],
            };
            for id in items.into_iter().filter_map(id_of) {
                println!("{}", printable(id));
            }
        }
        self.json || self.quiet
    }

    pub fn object(&self, v: &Value, keys: &[&str]) {
        if self.raw(v) {
            return;
        }
        let w = keys.iter().map(|k| k.len()).max().unwrap_or(0);
        for k in keys {
            println!("{k:<w$}  {}", text(&v[*k]));
        }
    }

    pub fn done(&self, message: &str) {
        if self.json {
            println!("{{}}");
        } else if !self.quiet {
            println!("{message}");
        }
    }

    pub fn created_gateway(&self, v: &Value) {
        if self.quiet {
            // The token is shown this once: even -q keeps it.
            println!("{}\t{}", text(&v["id"]), text(&v["token"]));
            return;
        }
        if self.raw(v) {
            return;
        }
        println!("created gateway {} ({})", text(&v["id"]), text(&v["name"]));
        println!("token: {}", text(&v["token"]));
        println!("       shown only now: keep it; `sgctl gateway token ID` issues a new one");
        println!("token expires: {}", text(&v["token_expires_at"]));
    }

    pub fn gateway(&self, v: &Value) {
        self.object(
            v,
            &[
                "id",
                "name",
                "active",
                "enabled",
                "token_expires_at",
                "token_expired",
                "created_at",
            ],
        );
    }

    pub fn gateways(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let keys = ["id", "name", "active", "enabled", "token_expires_at"];
        table(&keys, rows(v, &keys));
    }

    pub fn token(&self, id: &str, v: &Value) {
        if self.quiet {
            println!("{}", text(&v["token"]));
            return;
        }
        if self.raw(v) {
            return;
        }
        println!("new token for gateway {id}: {}", text(&v["token"]));
        println!("the old token no longer works; clients using it were disconnected");
        println!("token expires: {}", text(&v["token_expires_at"]));
    }

    pub fn destination(&self, v: &Value) {
        self.object(
            v,
            &[
                "id",
                "gateway_id",
                "name",
                "type",
                "resource_host",
                "resource_port",
                "protocol",
                "cloud_host",
                "cloud_port",
                "client_port",
                "active",
                "enabled",
            ],
        );
        if !self.json && !self.quiet {
            let rules: Vec<String> = v["ip_rules"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .map(|r| match r["ports"].as_str() {
                            Some(p) => format!("{} ports {p}", text(&r["cidr"])),
                            None => text(&r["cidr"]),
                        })
                        .collect()
                })
                .unwrap_or_default();
            println!(
                "ip_rules       {}",
                if rules.is_empty() {
                    "- (anyone)".into()
                } else {
                    rules.join(", ")
                }
            );
            let tls = &v["cloud_tls"];
            let mut line = text(&tls["mode"]);
            if let Some(fp) = tls["cert_fingerprint"].as_str() {
                line.push_str(&format!(", certificate {fp}"));
                if tls["issued_by_node"] == true {
                    line.push_str(" (issued by the node's CA)");
                }
            }
            println!("cloud_tls      {line}");
        }
    }

    pub fn destinations(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let out: Vec<Vec<String>> = v
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|d| {
                        vec![
                            text(&d["id"]),
                            text(&d["name"]),
                            format!(
                                "{}:{}",
                                text(&d["resource_host"]),
                                text(&d["resource_port"])
                            ),
                            match (&d["cloud_port"], &d["client_port"]) {
                                (Value::Null, Value::Null) => "-".into(),
                                (Value::Null, p) => format!("client port {}", text(p)),
                                (p, _) => format!("{}:{}", text(&d["cloud_host"]), text(p)),
                            },
                            text(&d["active"]),
                            text(&d["enabled"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        table(
            &["id", "name", "resource", "cloud", "active", "enabled"],
            out,
        );
    }

    pub fn clients(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let keys = [
            "client_id",
            "state",
            "version",
            "address",
            "node_id",
            "sessions",
            "active_streams",
            "connected_at",
        ];
        let mut head: Vec<&str> = keys.to_vec();
        head.push("notes");
        let mut lines = rows(v, &keys);
        if let Some(list) = v.as_array() {
            for (row, c) in lines.iter_mut().zip(list) {
                row.push(client_notes(c));
            }
        }
        table(&head, lines);
    }

    pub fn killed(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        println!(
            "client {} ended ({} session(s) closed): {}",
            text(&v["client_id"]),
            text(&v["sessions_closed"]),
            text(&v["reason"])
        );
    }

    pub fn events(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let keys = ["at", "region", "kind", "message"];
        table(&keys, rows(v, &keys));
    }

    pub fn nodes(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let keys = ["id", "region", "tunnel", "api", "version", "draining"];
        let mut rows = rows(v, &keys);
        // Mark the node that answered.
        if let Some(list) = v.as_array() {
            for (row, n) in rows.iter_mut().zip(list) {
                if n["this_node"].as_bool() == Some(true) {
                    row[0].push_str(" *");
                }
            }
        }
        table(&keys, rows);
    }

    pub fn acl(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        let rules = v["rules"].as_array().cloned().unwrap_or_default();
        for r in &rules {
            println!("{}", text(r));
        }
        match v["unnamed_targets_text"].as_str() {
            Some(words) => println!("({})", printable(words)),
            None if rules.is_empty() => {
                println!("(no rules: clients allow exactly the gateway's destinations)")
            }
            None => {}
        }
    }

    pub fn plan(&self, v: &Value) {
        if self.raw(v) {
            return;
        }
        self.object(
            v,
            &[
                "max_gateways",
                "max_destinations",
                "max_connections_per_gateway",
                "max_clients_per_gateway",
            ],
        );
        println!(
            "usage: {} active gateway(s), {} active destination(s)",
            text(&v["usage"]["active_gateways"]),
            text(&v["usage"]["active_destinations"])
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_sent() {
        let cell = text(&Value::String(
            "ok \u{1b}[2J\u{1b}]0;owned\u{7}\r done".into(),
        ));
        assert!(!cell.chars().any(char::is_control), "{cell:?}");
        assert!(cell.contains("\\u{1b}[2J"), "{cell}");
        assert_eq!(text(&Value::String("plain é".into())), "plain é");
    }
}
