//! The operator's console on a terminal (or on a pipe with `--console`).
//!
//! ```text
//! s                      figures: bytes transmitted and received, total and active connections
//! r                      client ports: the listeners of cloud destinations, and their state;
//!                        destinations this client cannot reach
//! l LEVEL                log level: ERROR, WARN, INFO, DEBUG or TRACE
//! g [GATEWAY]            show or choose the gateway the ACL commands apply to
//! show acl               the gateway's ACL
//! acl allow HOST:PORT    acl deny HOST:PORT    no acl HOST:PORT    no acl
//! A / D / N HOST:PORT    the replaced product's short forms of the three above; S: show acl
//! F FILE                 replace the gateway's ACL with an ACL file's rules
//! C                      the running configuration (secrets redacted)
//! h                      help
//! q                      quit
//! ```
//!
//! ACL changes go to the node, which stores them for the gateway and sends them to every
//! client of it; this console shows the result once the node has answered.

use crate::registry::Registry;
use crate::stats::Figures;
use sg_proto::acl::{parse_command, unnamed_targets, Command};
use sg_proto::loglevel::LogLevel;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

pub const HELP: &str = "\
commands:
  s                      bytes transmitted and received, total and active connections
  r                      client ports (cloud destinations): where they listen, what they reach;
                         destinations this client cannot reach (health checks)
  l LEVEL                set the log level (ERROR, WARN, INFO, DEBUG, TRACE)
  g [GATEWAY]            show or choose the gateway ACL commands apply to
  show acl               show the gateway's ACL
  acl allow HOST:PORT    allow a target (empty host or port: any; HTTP: HOST:PORT/path)
  acl deny HOST:PORT     deny a target
  no acl HOST:PORT       remove the rule for a target
  no acl                 remove every rule
  A HOST:PORT            short for acl allow (also D: acl deny, N: no acl, S: show acl)
  F FILE                 replace the gateway's ACL with the rules of an ACL file
  C                      the running configuration (secrets redacted)
  h                      this help
  q                      quit";

/// The replaced product's one-letter ACL commands, spelled out. `s` stays the figures:
/// only a capital `S` shows the ACL.
fn expand_short_form(line: &str) -> Option<String> {
    let (first, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let long = match first {
        "A" | "a" => format!("acl allow {rest}"),
        "D" | "d" => format!("acl deny {rest}"),
        "N" | "n" if rest.is_empty() => "no acl".to_string(),
        "N" | "n" => format!("no acl {rest}"),
        "S" => "show acl".to_string(),
        _ => return None,
    };
    Some(long)
}

/// What a command asks the caller to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Print(String),
    Quit,
}

pub struct Console {
    registry: Arc<Registry>,
    current: String,
}

fn figures_line(label: &str, f: Figures) -> String {
    format!(
        "{label}: transmitted {} bytes, received {} bytes, {} connections in total, {} active",
        f.transmitted, f.received, f.total_connections, f.active_connections
    )
}

impl Console {
    pub fn new(registry: Arc<Registry>) -> Self {
        let current = registry
            .gateways
            .first()
            .map(|g| g.id().to_string())
            .unwrap_or_default();
        Console { registry, current }
    }

    /// Runs one command line.
    pub fn handle(&mut self, line: &str) -> Outcome {
        let expanded = expand_short_form(line.trim());
        let line = expanded.as_deref().unwrap_or(line.trim());
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        let out = match first {
            "" => String::new(),
            "h" | "help" | "?" => HELP.to_string(),
            "q" | "quit" | "exit" => return Outcome::Quit,
            "s" => {
                let mut lines: Vec<String> = self
                    .registry
                    .gateways
                    .iter()
                    .map(|g| figures_line(&format!("gateway {}", g.id()), g.figures()))
                    .collect();
                lines.push(figures_line("total", self.registry.totals()));
                lines.join("\n")
            }
            "r" => self.client_ports(),
            "l" => match words.next().map(str::parse::<LogLevel>) {
                Some(Ok(level)) => match self.registry.log.set_level(level) {
                    Ok(()) => format!("log level is now {level}"),
                    Err(e) => e,
                },
                Some(Err(e)) => e,
                None => match self.registry.log.filters() {
                    Some(f) => {
                        format!("log filters are {f} (RUST_LOG); `l LEVEL` sets one level instead")
                    }
                    None => format!(
                        "log level is {}; change it with `l LEVEL`",
                        self.registry.log.level()
                    ),
                },
            },
            "g" => match words.next() {
                None => {
                    let list: Vec<String> = self
                        .registry
                        .gateways
                        .iter()
                        .map(|g| {
                            let mark = if g.id() == self.current { "*" } else { " " };
                            format!("{mark} {} ({} session(s))", g.id(), g.sessions().len())
                        })
                        .collect();
                    list.join("\n")
                }
                Some(id) if self.registry.gateway(id).is_some() => {
                    self.current = id.to_string();
                    format!("ACL commands now apply to gateway {id}")
                }
                Some(id) => format!("this client does not serve gateway {id}"),
            },
            "acl" | "no" | "show" => self.acl_command(line),
            "F" | "f" => self.load_acl_file(line[1..].trim()),
            "C" | "c" => self.running_config(),
            other => format!("unknown command {other:?}; `h` lists the commands"),
        };
        Outcome::Print(out)
    }

    fn acl_command(&mut self, line: &str) -> String {
        let Some(gw) = self.registry.gateway(&self.current).cloned() else {
            return "this client serves no gateway".into();
        };
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(e) => return e.0,
        };
        let mut acl = gw.acl();
        if cmd == Command::Show {
            let mut lines = acl.to_strings();
            lines.push(format!(
                "gateway {}: {}",
                gw.id(),
                unnamed_targets(!acl.is_empty(), gw.acl_default)
            ));
            return lines.join("\n");
        }
        if !acl.apply(&cmd) {
            return "no change".into();
        }
        match gw.push_acl(acl.to_strings()) {
            Ok(()) => format!(
                "sent to the node; gateway {} now has {} rule(s), for every client",
                gw.id(),
                acl.rules().len()
            ),
            Err(e) => e,
        }
    }
}

impl Console {
    /// `F FILE`: the file's rules (read as `--acl-file` reads them) replace the gateway's
    /// ACL on the node, for every client of it.
    fn load_acl_file(&self, path: &str) -> String {
        if path.is_empty() {
            return "name the file: `F FILE`".into();
        }
        let Some(gw) = self.registry.gateway(&self.current).cloned() else {
            return "this client serves no gateway".into();
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return format!("cannot read {path}: {e}"),
        };
        let rules = match sg_proto::acl::parse_file(&text) {
            Ok(r) => r,
            Err(e) => return format!("{path}: {}", e.0),
        };
        let rules: Vec<String> = rules.iter().map(ToString::to_string).collect();
        let n = rules.len();
        match gw.push_acl(rules) {
            Ok(()) => format!(
                "sent {path} to the node; gateway {} now has {n} rule(s), for every client",
                gw.id()
            ),
            Err(e) => e,
        }
    }

    /// `r`: every gateway's client ports, listening or not (and why not), and the
    /// destinations this client cannot reach (F31).
    fn client_ports(&self) -> String {
        let mut lines = Vec::new();
        for g in &self.registry.gateways {
            for h in g.health.views().iter().filter(|h| !h.healthy) {
                lines.push(format!(
                    "gateway {}: destination {} ({}) UNHEALTHY from this client: {}",
                    g.id(),
                    h.destination_id,
                    h.name,
                    h.reason
                ));
            }
            let ports = g.listeners();
            if ports.is_empty() {
                lines.push(format!("gateway {}: no cloud destinations", g.id()));
            }
            lines.extend(ports.iter().map(|p| format!("gateway {}: {p}", g.id())));
        }
        lines.join("\n")
    }

    /// `C`: the settings this client runs with, and what each gateway serves now.
    fn running_config(&self) -> String {
        let mut lines = vec![
            format!("client {}", self.registry.client_id),
            self.registry.config_summary.clone(),
            match self.registry.log.filters() {
                Some(f) => format!("log filters: {f} (RUST_LOG)"),
                None => format!("log level: {}", self.registry.log.level()),
            },
        ];
        for g in &self.registry.gateways {
            let destinations = g.config().map_or(0, |c| c.destinations.len());
            let acl = g.acl();
            lines.push(format!(
                "gateway {}: {} session(s), {destinations} destination(s), {} ACL rule(s); {}",
                g.id(),
                g.sessions().len(),
                acl.rules().len(),
                unnamed_targets(!acl.is_empty(), g.acl_default)
            ));
        }
        lines.join("\n")
    }
}

/// Reads commands until EOF or `q`; `q` asks the whole client to stop.
pub async fn run(registry: Arc<Registry>, input: impl AsyncBufRead + Unpin) {
    let mut console = Console::new(registry.clone());
    let mut lines = input.lines();
    println!("sg-client console: `h` for help");
    while let Ok(Some(line)) = lines.next_line().await {
        match console.handle(&line) {
            Outcome::Print(text) if !text.is_empty() => println!("{text}"),
            Outcome::Print(_) => {}
            Outcome::Quit => {
                println!("quitting");
                let _ = registry.quit.send(true);
                return;
            }
        }
    }
}
