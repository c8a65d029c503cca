//! A second host for tests: a network namespace joined to this one by a veth pair, on the
//! benchmark range 198.18.0.0/15 (never the machine's real subnet). A client started in it
//! has its own network stack, so its path to a service can be cut (with nftables inside
//! the namespace) while another client's path stays up. Needs root; removed on drop.

use std::net::Ipv4Addr;
use std::process::Command;

pub struct NetnsHost {
    pub name: String,
    /// This machine's end of the link.
    pub host_ip: Ipv4Addr,
    /// The namespace's end.
    pub ns_ip: Ipv4Addr,
    host_if: String,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetnsHost {
    /// A namespace named after `tag` and this process (so parallel runs never collide),
    /// on 198.18.N.0/30 with N from `slot` (1-250).
    pub fn create(tag: &str, slot: u8) -> Result<NetnsHost, String> {
        let pid = std::process::id();
        let name = format!("sg{tag}{pid}");
        let host_if = format!("sgh{}{}", tag.chars().next().unwrap_or('x'), pid % 100_000);
        let ns_if = format!("sgn{}{}", tag.chars().next().unwrap_or('x'), pid % 100_000);
        let n = slot.clamp(1, 250);
        let (host_ip, ns_ip) = (Ipv4Addr::new(198, 18, n, 1), Ipv4Addr::new(198, 18, n, 2));
        let host = NetnsHost {
            name: name.clone(),
            host_ip,
            ns_ip,
            host_if: host_if.clone(),
        };
        // Leftovers of a run that was killed.
        let _ = run("ip", &["netns", "del", &name]);
        let _ = run("ip", &["link", "del", &host_if]);
        run("ip", &["netns", "add", &name])?;
        run(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
        )?;
        run("ip", &["link", "set", &ns_if, "netns", &name])?;
        run(
            "ip",
            &["addr", "add", &format!("{host_ip}/30"), "dev", &host_if],
        )?;
        run("ip", &["link", "set", &host_if, "up"])?;
        host.exec(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if])?;
        host.exec(&["ip", "link", "set", &ns_if, "up"])?;
        host.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, command: &[&str]) -> Result<(), String> {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(command);
        run("ip", &args)
    }

    /// The prefix that starts a program inside the namespace.
    pub fn wrapper(&self) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.name.clone(),
        ]
    }

    /// From inside the namespace, refuse (TCP reset) every connection to `ip:port`.
    pub fn cut(&self, ip: Ipv4Addr, port: u16) -> Result<(), String> {
        self.exec(&["nft", "add", "table", "inet", "sgcut"])?;
        self.exec(&[
            "nft",
            "add",
            "chain",
            "inet",
            "sgcut",
            "out",
            "{ type filter hook output priority 0; }",
        ])?;
        let (ip, port) = (ip.to_string(), port.to_string());
        self.exec(&[
            "nft", "add", "rule", "inet", "sgcut", "out", "ip", "daddr", &ip, "tcp", "dport",
            &port, "reject", "with", "tcp", "reset",
        ])
    }

    /// Undoes [`NetnsHost::cut`].
    pub fn restore(&self) -> Result<(), String> {
        self.exec(&["nft", "delete", "table", "inet", "sgcut"])
    }
}

impl Drop for NetnsHost {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.host_if]);
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}
