//! The state's rules, tested directly over a real sled store in a temp dir.

use super::*;
use crate::cloud_dest::NodeEndpoints;
use crate::ports::PortPool;
use crate::records::{DestinationRecord, GatewayRecord};
use crate::store::SledStore;
use crate::store::{Op, Replicated, Snapshot, StoreError};
use sg_api::destinations::{DestinationPatch, NewDestination};
use sg_api::gateways::{GatewayPatch, NewGateway};
use sg_api::node::PlanUpdate;
use sg_api::ErrorCode;
use std::net::{Ipv4Addr, TcpListener};

/// A state over a temp sled dir with a small port range that is free right now.
fn state() -> (State, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let base = free_block(8);
    let ports = PortPool::new(base..=base + 7, Ipv4Addr::LOCALHOST.into());
    (State::open(Box::new(store), ports, issuer()).unwrap(), dir)
}

fn issuer() -> Issuer {
    Issuer {
        cloud_host: "127.0.0.1".into(),
        ca: None,
        node: NodeEndpoints {
            tunnel: "127.0.0.1:9000".parse().unwrap(),
            api: "127.0.0.1:9090".parse().unwrap(),
            cloud_host: "127.0.0.1".into(),
        },
    }
}

fn free_block(n: u16) -> u16 {
    'search: for base in (21000..31000u16).step_by(97) {
        for p in base..base + n {
            if TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_err() {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no free block of ports");
}

fn gw(s: &mut State, name: &str) -> GatewayRecord {
    s.create_gateway(NewGateway {
        name: name.into(),
        ..Default::default()
    })
    .unwrap()
    .0
    .gateway
}

fn dest(s: &mut State, gw: &str) -> Result<DestinationRecord, StateError> {
    s.create_destination(
        gw,
        NewDestination {
            name: "db".into(),
            resource_host: "127.0.0.1".into(),
            resource_port: 5432,
            ..Default::default()
        },
    )
    .map(|(d, _)| d)
}

#[test]
fn create_gateway_hashes_the_token_and_reloads() {
    let (mut s, dir) = state();
    let (issued, _) = s
        .create_gateway(NewGateway {
            name: " prod ".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(issued.gateway.name, "prod");
    assert!(crate::ids::token_matches(
        &issued.token,
        &issued.gateway.token_hash
    ));
    let d = dest(&mut s, &issued.gateway.id).unwrap();
    let port = d.cloud_port.expect("active destinations get a port");
    drop(s);
    let store = crate::store::sled_store_tests::reopen(dir.path());
    let again = State::open(
        Box::new(store),
        PortPool::new(port..=port, Ipv4Addr::LOCALHOST.into()),
        issuer(),
    )
    .unwrap();
    assert_eq!(again.gateways().len(), 1);
    let d2 = again.destination(&issued.gateway.id, &d.id).unwrap();
    assert_eq!(d2.cloud_port, Some(port), "the port survives a restart");
}

#[test]
fn a_cloud_destination_never_takes_a_cloud_port_through_its_gateways_ups_and_downs() {
    let (mut s, _dir) = state();
    let g = gw(&mut s, "g");
    let (d, _) = s
        .create_destination(
            &g.id,
            NewDestination {
                name: "cloud-db".into(),
                resource_host: "db.cloud.example".into(),
                resource_port: 5432,
                kind: Some(sg_api::destinations::DestinationType::Cloud),
                client_port: Some(15432),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(d.active && d.cloud_port.is_none(), "{d:?}");
    let down = GatewayPatch {
        active: Some(false),
        ..Default::default()
    };
    s.update_gateway(&g.id, down).unwrap();
    let up = GatewayPatch {
        active: Some(true),
        ..Default::default()
    };
    s.update_gateway(&g.id, up).unwrap();
    let back = s.destination(&g.id, &d.id).unwrap();
    assert!(back.active && back.cloud_port.is_none(), "{back:?}");
    // Every cloud port of the range is still free for on-premises destinations.
    for _ in 0..8 {
        assert!(dest(&mut s, &g.id).unwrap().cloud_port.is_some());
    }
}

#[test]
fn invalid_input_names_the_field_and_stores_nothing() {
    let (mut s, _dir) = state();
    let err = s
        .create_gateway(NewGateway {
            name: "  ".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(&err, StateError::Invalid { field, .. } if field == "name"));
    let g = gw(&mut s, "g");
    for (host, port, field) in [
        ("", 1, "resource_host"),
        ("a b", 1, "resource_host"),
        ("h", 0, "resource_port"),
        ("h", 70000, "resource_port"),
    ] {
        let err = s
            .create_destination(
                &g.id,
                NewDestination {
                    name: "x".into(),
                    resource_host: host.into(),
                    resource_port: port,
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(
            matches!(&err, StateError::Invalid { field: f, .. } if f == field),
            "{err}"
        );
    }
    assert!(s.destinations_of(&g.id).unwrap().is_empty());
    assert!(matches!(
        s.create_gateway(NewGateway {
            name: "x".into(),
            token_expires_in_days: Some(0),
            ..Default::default()
        }),
        Err(StateError::Invalid { field, .. }) if field == "token_expires_in_days"
    ));
}

#[test]
fn plan_limits_refuse_creates_with_the_limit_named() {
    let (mut s, _dir) = state();
    s.set_plan(PlanUpdate {
        max_gateways: Some(1),
        max_destinations: Some(1),
        ..Default::default()
    })
    .unwrap();
    let g = gw(&mut s, "a");
    let err = s
        .create_gateway(NewGateway {
            name: "b".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("max_gateways"), "{err}");
    dest(&mut s, &g.id).unwrap();
    let err = dest(&mut s, &g.id).unwrap_err();
    assert!(err.to_string().contains("max_destinations"), "{err}");
}

#[test]
fn an_inactive_gateway_takes_its_destinations_down_and_back() {
    let (mut s, _dir) = state();
    let g = gw(&mut s, "a");
    // `d` holds the second port; with the first free again, only the preference for
    // its old port can bring the same one back.
    let filler = dest(&mut s, &g.id).unwrap();
    let d = dest(&mut s, &g.id).unwrap();
    let port = d.cloud_port.unwrap();
    s.delete_destination(&g.id, &filler.id).unwrap();
    s.update_gateway(
        &g.id,
        GatewayPatch {
            active: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    let down = s.destination(&g.id, &d.id).unwrap().clone();
    assert!(!down.active && down.cloud_port.is_none(), "port released");
    let err = s
        .update_destination(
            &g.id,
            &d.id,
            DestinationPatch {
                active: Some(true),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains(&g.id), "names the gateway: {err}");
    s.update_gateway(
        &g.id,
        GatewayPatch {
            active: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    let up = s.destination(&g.id, &d.id).unwrap();
    assert!(up.active);
    assert_eq!(
        up.cloud_port,
        Some(port),
        "the same port comes back when free"
    );
}

#[test]
fn downgrading_below_usage_deactivates_everything() {
    let (mut s, _dir) = state();
    let a = gw(&mut s, "a");
    let _b = gw(&mut s, "b");
    dest(&mut s, &a.id).unwrap();
    s.set_plan(PlanUpdate {
        max_gateways: Some(1),
        ..Default::default()
    })
    .unwrap();
    assert!(s.gateways().iter().all(|g| !g.active));
    assert!(s
        .destinations_of(&a.id)
        .unwrap()
        .iter()
        .all(|d| d.cloud_port.is_none()));
    // One gateway fits again under the new plan, a second does not.
    s.update_gateway(
        &a.id,
        GatewayPatch {
            active: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(s.destinations_of(&a.id).unwrap()[0].active);
    let err = s
        .update_gateway(
            &_b.id,
            GatewayPatch {
                active: Some(true),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(
        err,
        StateError::LimitReached {
            limit: "max_gateways",
            ..
        }
    ));
}

#[test]
fn regenerating_the_token_invalidates_the_old_one() {
    let (mut s, _dir) = state();
    let (issued, _) = s
        .create_gateway(NewGateway {
            name: "a".into(),
            ..Default::default()
        })
        .unwrap();
    let (again, changes) = s.regenerate_token(&issued.gateway.id, None).unwrap();
    assert_ne!(issued.token, again.token);
    let stored = s.gateway(&issued.gateway.id).unwrap();
    assert!(!crate::ids::token_matches(
        &issued.token,
        &stored.token_hash
    ));
    assert!(crate::ids::token_matches(&again.token, &stored.token_hash));
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::TokenRegenerated { .. })));
}

#[test]
fn deleting_a_gateway_deletes_its_destinations_and_frees_ports() {
    let (mut s, _dir) = state();
    let g = gw(&mut s, "a");
    let d = dest(&mut s, &g.id).unwrap();
    s.delete_gateway(&g.id).unwrap();
    assert!(matches!(s.gateway(&g.id), Err(StateError::NotFound { .. })));
    let g2 = gw(&mut s, "b");
    let d2 = dest(&mut s, &g2.id).unwrap();
    assert_eq!(d2.cloud_port, d.cloud_port, "the freed port is reused");
}

#[test]
fn a_gateway_holds_a_bounded_number_of_destinations() {
    let (mut s, _dir) = state();
    let g = gw(&mut s, "a");
    for i in 0..MAX_DESTINATIONS_PER_GATEWAY {
        s.create_destination(
            &g.id,
            NewDestination {
                name: format!("d{i}"),
                resource_host: "10.0.0.1".into(),
                resource_port: 80,
                active: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let err = dest(&mut s, &g.id).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Conflict {
                code: ErrorCode::TooManyDestinations,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn acl_rules_are_validated_and_normalized() {
    let (mut s, _dir) = state();
    let g = gw(&mut s, "a");
    let (rec, changes) = s
        .set_acl(
            &g.id,
            &["acl  allow  DB:5432".into(), "acl deny :22".into()],
        )
        .unwrap();
    assert_eq!(rec.acl, vec!["acl allow db:5432", "acl deny :22"]);
    assert_eq!(changes.len(), 1);
    let err = s.set_acl(&g.id, &["acl allow db".into()]).unwrap_err();
    assert!(
        matches!(&err, StateError::Invalid { field, .. } if field == "rules[0]"),
        "{err}"
    );
    assert_eq!(
        s.gateway(&g.id).unwrap().acl.len(),
        2,
        "nothing stored on refusal"
    );
}

#[test]
fn a_snapshot_makes_the_copy_exactly_it_and_keeps_what_cannot_be_read() {
    let (mut s, _dir) = state();
    let a = gw(&mut s, "a");
    let b = gw(&mut s, "b");
    let d = dest(&mut s, &a.id).unwrap();
    let changes = s
        .replicate(Replicated::Snapshot(Snapshot {
            revision: 10,
            gateways: vec![b.clone()],
            unreadable: [a.id.clone()].into_iter().collect(),
            ..Default::default()
        }))
        .unwrap();
    assert!(s.gateway(&a.id).is_ok(), "an unreadable record is kept");
    assert!(
        s.destination(&a.id, &d.id).is_err(),
        "what is gone is deleted"
    );
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::DestinationRemoved { id, .. } if *id == d.id)));
    assert_eq!(s.store.revision().unwrap(), Some(10));
    // An older snapshot is refused unless etcd went back in time (a restore).
    let old = Snapshot {
        revision: 5,
        ..Default::default()
    };
    assert!(matches!(
        s.replicate(Replicated::Snapshot(old)),
        Err(StateError::Store(StoreError::Stale { .. }))
    ));
    let restored = Snapshot {
        revision: 5,
        restored: true,
        ..Default::default()
    };
    s.replicate(Replicated::Snapshot(restored)).unwrap();
    assert!(s.gateways().is_empty(), "a restore wins");
}

#[test]
fn replicated_changes_apply_once_and_derive_what_the_actors_do() {
    let (mut s, _dir) = state();
    let a = gw(&mut s, "a");
    let mut rekeyed = a.clone();
    rekeyed.token_hash = "other".into();
    let batch = |through| Replicated::Changes {
        through,
        changes: vec![(through, Op::PutGateway(rekeyed.clone()))],
    };
    let changes = s.replicate(batch(7)).unwrap();
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::TokenRegenerated { .. })),
        "a new token hash closes the old sessions: {changes:?}"
    );
    assert!(s.replicate(batch(7)).unwrap().is_empty(), "seen already");
    let gone = Replicated::Changes {
        through: 8,
        changes: vec![(8, Op::DeleteGateway(a.id.clone()))],
    };
    assert!(matches!(
        s.replicate(gone).unwrap().as_slice(),
        [Change::GatewayRemoved { .. }]
    ));
}

#[test]
fn a_downgrade_is_one_write_whatever_it_deactivates() {
    let (mut s, _dir) = state();
    for name in ["a", "b", "c"] {
        let g = gw(&mut s, name);
        dest(&mut s, &g.id).unwrap();
    }
    let before = s.plan().epoch;
    let (_, changes) = s
        .set_plan(PlanUpdate {
            max_gateways: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(s.plan().epoch, before + 1);
    // One stored plan; six derived changes (three gateways, three destinations).
    assert_eq!(
        s.store
            .gateways()
            .unwrap()
            .iter()
            .filter(|g| g.active)
            .count(),
        3,
        "the stored records were not rewritten"
    );
    assert_eq!(changes.len(), 1 + 6, "{changes:?}");
    assert!(
        s.gateways().iter().all(|g| !g.active),
        "all effectively inactive"
    );
}

#[test]
fn running_out_of_ports_is_a_clear_error() {
    let (mut s, _dir) = state();
    let g = gw(&mut s, "a");
    for _ in 0..8 {
        dest(&mut s, &g.id).unwrap();
    }
    assert!(matches!(
        dest(&mut s, &g.id),
        Err(StateError::NoFreePort { .. })
    ));
}
