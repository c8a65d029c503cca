//! Crash loop: `kill -9` at a random moment while configuration writes stream in (one cycle
//! in ten also kills the node again during its start-up). After every restart each
//! acknowledged change is present, the one in flight is all there or not at all (no
//! half-applied batch: an ACL is the old one or the new one, a deleted gateway takes all its
//! destinations with it), cloud ports are unchanged, and the node starts every time.
//!
//! The suite runs 20 cycles; `scripts/crashloop.sh` runs 200 (`SG_CRASHLOOP_CYCLES`).

use serde_json::json;
use sg_api::destinations::DestinationView;
use sg_api::gateways::{AclView, GatewayView};
use sg_e2e::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A small deterministic generator (seeded from the clock, printed for replay).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Gw {
    /// Destination id to cloud port.
    destinations: BTreeMap<String, u16>,
    acl: Vec<String>,
}

#[derive(Debug, Clone)]
enum Op {
    CreateGateway(String),
    DeleteGateway(String),
    CreateDestination { gw: String, name: String },
    PutAcl { gw: String, rules: Vec<String> },
}

const MAX_GATEWAYS: usize = 12;
const MAX_DESTINATIONS: usize = 4;

fn next_op(model: &BTreeMap<String, Gw>, rng: &mut Rng, serial: &mut u64) -> Op {
    *serial += 1;
    let ids: Vec<&String> = model.keys().collect();
    let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize].clone();
    match rng.below(10) {
        _ if ids.is_empty() => Op::CreateGateway(format!("g{serial}")),
        0..=2 if ids.len() < MAX_GATEWAYS => Op::CreateGateway(format!("g{serial}")),
        0..=2 => Op::DeleteGateway(pick(rng)),
        3 => Op::DeleteGateway(pick(rng)),
        4..=6 => {
            let gw = pick(rng);
            if model[&gw].destinations.len() >= MAX_DESTINATIONS {
                Op::DeleteGateway(gw)
            } else {
                Op::CreateDestination {
                    gw,
                    name: format!("d{serial}"),
                }
            }
        }
        _ => {
            // A batch of rules, each naming the write it came from.
            let n = 1 + rng.below(20);
            let rules = (0..n)
                .map(|i| {
                    format!(
                        "acl allow 10.{}.{}.{i}:80",
                        *serial / 250 % 250,
                        *serial % 250
                    )
                })
                .collect();
            Op::PutAcl {
                gw: pick(rng),
                rules,
            }
        }
    }
}

/// Sends the op; `Ok(true)` when acknowledged (2xx), `Ok(false)` when answered with a
/// refusal (nothing changed), `Err` when the node died before answering.
fn apply(node: &Node, op: &Op, model: &mut BTreeMap<String, Gw>) -> Result<bool, String> {
    let r = match op {
        Op::CreateGateway(name) => {
            node.try_call("POST", "/v1/gateways", Some(json!({ "name": name })))?
        }
        Op::DeleteGateway(id) => node.try_call("DELETE", &format!("/v1/gateways/{id}"), None)?,
        Op::CreateDestination { gw, name } => node.try_call(
            "POST",
            &format!("/v1/gateways/{gw}/destinations"),
            Some(json!({ "name": name, "resource_host": "127.0.0.1", "resource_port": 9 })),
        )?,
        Op::PutAcl { gw, rules } => node.try_call(
            "PUT",
            &format!("/v1/gateways/{gw}/acl"),
            Some(json!({ "rules": rules })),
        )?,
    };
    if !(200..300).contains(&r.status) {
        return Ok(false);
    }
    match op {
        Op::CreateGateway(_) => {
            let g: GatewayView = r.into_typed().map_err(|e| e.to_string())?;
            model.insert(g.id, Gw::default());
        }
        Op::DeleteGateway(id) => {
            model.remove(id);
        }
        Op::CreateDestination { gw, .. } => {
            let d: DestinationView = r.into_typed().map_err(|e| e.to_string())?;
            let port = d.cloud_port.ok_or("no port")?;
            if let Some(g) = model.get_mut(gw) {
                g.destinations.insert(d.id, port);
            }
        }
        Op::PutAcl { gw, rules } => {
            if let Some(g) = model.get_mut(gw) {
                g.acl = rules.clone();
            }
        }
    }
    Ok(true)
}

/// What the node holds now, read through its API.
fn observe(node: &Node) -> BTreeMap<String, Gw> {
    let list: Vec<GatewayView> = node.fetch("/v1/gateways");
    let mut seen = BTreeMap::new();
    for g in list {
        let id = g.id;
        let dests: Vec<DestinationView> = node.fetch(&format!("/v1/gateways/{id}/destinations"));
        let destinations = dests
            .into_iter()
            .map(|d| (d.id, d.cloud_port.expect("port")))
            .collect();
        let acl = node
            .fetch::<AclView>(&format!("/v1/gateways/{id}/acl"))
            .rules;
        seen.insert(id, Gw { destinations, acl });
    }
    seen
}

/// Checks the node against the model; the op in flight may have happened or not, but
/// wholly. Returns the model as it now is.
fn verify(
    node: &Node,
    model: &BTreeMap<String, Gw>,
    in_flight: Option<&Op>,
    seen: BTreeMap<String, Gw>,
    cycle: usize,
) -> BTreeMap<String, Gw> {
    let mut with_op = model.clone();
    match in_flight {
        Some(Op::CreateGateway(name)) => {
            let list = node.try_fetch::<Vec<GatewayView>>("/v1/gateways");
            if let Some(g) = list.into_iter().flatten().find(|g| g.name == *name) {
                with_op.insert(g.id, Gw::default());
            }
        }
        Some(Op::DeleteGateway(id)) => {
            with_op.remove(id);
        }
        Some(Op::CreateDestination { gw, name }) => {
            let dests =
                node.try_fetch::<Vec<DestinationView>>(&format!("/v1/gateways/{gw}/destinations"));
            if let Some(d) = dests.into_iter().flatten().find(|d| d.name == *name) {
                if let Some(g) = with_op.get_mut(gw) {
                    g.destinations
                        .insert(d.id, d.cloud_port.unwrap_or_default());
                }
            }
        }
        Some(Op::PutAcl { gw, rules }) => {
            if let Some(g) = with_op.get_mut(gw) {
                g.acl = rules.clone();
            }
        }
        None => {}
    }
    assert!(
        seen == *model || seen == with_op,
        "cycle {cycle}: the node holds neither the acknowledged state nor it plus the write in \
         flight ({in_flight:?})\nseen:  {seen:?}\nmodel: {model:?}\nwith:  {with_op:?}"
    );
    if let Some(Op::DeleteGateway(id)) = in_flight {
        if !seen.contains_key(id) {
            let r = node.call("GET", &format!("/v1/gateways/{id}/destinations"), None);
            assert_eq!(
                r.status, 404,
                "cycle {cycle}: a deleted gateway left {}",
                r.body
            );
        }
    }
    seen
}

#[test]
fn kill9_at_random_moments_never_loses_or_half_applies_a_change() {
    let cycles: usize = env_or("SG_CRASHLOOP_CYCLES", 20);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("crash loop: {cycles} cycles, seed {seed}");
    let mut rng = Rng(seed);
    let mut node = Node::start();
    let mut model: BTreeMap<String, Gw> = BTreeMap::new();
    let (mut serial, mut acked, mut in_startup) = (0u64, 0usize, 0usize);
    let started = Instant::now();
    for cycle in 0..cycles {
        let pid = node.pid().expect("running") as i32;
        let delay = Duration::from_millis(rng.below(400));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            send_signal(pid, libc::SIGKILL);
        });
        let mut in_flight = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let op = next_op(&model, &mut rng, &mut serial);
            match apply(&node, &op, &mut model) {
                Ok(true) => acked += 1,
                Ok(false) => {}
                Err(_) => {
                    in_flight = Some(op);
                    break;
                }
            }
        }
        killer.join().expect("killer");
        if rng.below(10) == 0 {
            in_startup += 1;
            node.crash_during_startup(Duration::from_millis(rng.below(150)));
        }
        node.restart();
        let seen = observe(&node);
        model = verify(&node, &model, in_flight.as_ref(), seen, cycle);
    }
    eprintln!(
        "crash loop: {cycles} cycles ({in_startup} also killed during start-up), {acked} \
         acknowledged writes, 0 lost, {} gateways at the end, {:.1}s",
        model.len(),
        started.elapsed().as_secs_f64()
    );
}
