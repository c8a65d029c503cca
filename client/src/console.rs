//! The operator's console on a terminal (or on a pipe with `--console`).
//!
//! ```text
//! s                      figures: bytes transmitted and received, total and active connections
//! l LEVEL                log level: ERROR, WARN, INFO, DEBUG or TRACE
//! g [GATEWAY]            show or choose the gateway the ACL commands apply to
//! show acl               the gateway's ACL
//! acl allow HOST:PORT    acl deny HOST:PORT    no acl HOST:PORT    no acl
//! h                      help
//! q                      quit
//! ```
//!
//! ACL changes go to the node, which stores them for the gateway and sends them to every
//! client of it; this console shows the result once the node has answered.

use crate::registry::Registry;
use crate::stats::Figures;
use sg_proto::acl::{parse_command, Command};
use sg_proto::loglevel::LogLevel;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

pub const HELP: &str = "\
commands:
  s                      bytes transmitted and received, total and active connections
  l LEVEL                set the log level (ERROR, WARN, INFO, DEBUG, TRACE)
  g [GATEWAY]            show or choose the gateway ACL commands apply to
  show acl               show the gateway's ACL
  acl allow HOST:PORT    allow a target (empty host or port: any; HTTP: HOST:PORT/path)
  acl deny HOST:PORT     deny a target
  no acl HOST:PORT       remove the rule for a target
  no acl                 remove every rule
  h                      this help
  q                      quit";

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
        let line = line.trim();
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
            "l" => match words.next().map(str::parse::<LogLevel>) {
                Some(Ok(level)) => match self.registry.log.set_level(level) {
                    Ok(()) => format!("log level is now {level}"),
                    Err(e) => e,
                },
                Some(Err(e)) => e,
                None => format!(
                    "log level is {}; change it with `l LEVEL`",
                    self.registry.log.level()
                ),
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
            if acl.is_empty() {
                return format!(
                    "gateway {}: no ACL rules (only its configured destinations are reachable)",
                    gw.id()
                );
            }
            return acl.to_strings().join("\n");
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
