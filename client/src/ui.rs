//! The client's web UI: the connection figures (updating live), each gateway with its
//! sessions, the ACL (view and edit) and the log level.
//!
//! It listens on 127.0.0.1 unless told otherwise, and anywhere else only with a password.
//! With `--ui-password`, every page and every API call needs it: pages through a login
//! form that sets a session cookie, scripts through `Authorization: Bearer PASSWORD`.

use crate::config::UiConfig;
use crate::registry::Registry;
use crate::ui_auth::{Credentials, UiAuth, Verdict, SESSION_LIFETIME};
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;
use serde_json::json;
use sg_proto::loglevel::LogLevel;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const COOKIE: &str = "sg_ui";

struct UiState {
    registry: Arc<Registry>,
    auth: UiAuth,
}

impl UiState {
    fn verdict(&self, req: &HttpRequest) -> Verdict {
        let header_str = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let cookie = header_str(header::COOKIE).and_then(|c| {
            c.split(';')
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| *k == COOKIE)
                .map(|(_, v)| v)
        });
        let creds = Credentials {
            bearer: header_str(header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer ")),
            cookie,
            loopback_host: loopback_host(req),
        };
        self.auth.check(creds, peer_ip(req), Instant::now())
    }
}

fn peer_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

type State = web::Data<UiState>;

fn loopback_host(req: &HttpRequest) -> bool {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

/// The answer to a request that is not allowed (`None` when it is).
fn refusal(verdict: Verdict) -> Option<HttpResponse> {
    match verdict {
        Verdict::Allowed => None,
        Verdict::Denied => Some(
            HttpResponse::Unauthorized()
                .json(json!({ "error": "unauthorized", "message": "log in with the UI password" })),
        ),
        Verdict::Throttled(wait) => Some(throttled(wait)),
    }
}

fn throttled(wait: Duration) -> HttpResponse {
    HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, wait.as_secs().max(1).to_string()))
        .json(json!({
            "error": "too_many_attempts",
            "message": format!("too many failed attempts from this address; retry in {}s", wait.as_secs().max(1)),
        }))
}

/// A page, with headers that keep it out of frames and stop injected scripts: only the
/// page's own script (by nonce) runs, and it talks only to this UI.
fn page(html: &str) -> HttpResponse {
    let nonce = sg_proto::ids::random_hex(16);
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            format!(
                "default-src 'self'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
            ),
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(html.replace("<script>", &format!("<script nonce=\"{nonce}\">")))
}

async fn index(state: State, req: HttpRequest) -> HttpResponse {
    match state.verdict(&req) {
        Verdict::Allowed => page(PAGE),
        Verdict::Throttled(wait) => throttled(wait),
        Verdict::Denied => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/login"))
            .finish(),
    }
}

async fn login_page() -> HttpResponse {
    page(&LOGIN.replace("{{message}}", ""))
}

#[derive(Deserialize)]
struct LoginForm {
    password: String,
}

async fn login(state: State, req: HttpRequest, form: web::Form<LoginForm>) -> HttpResponse {
    let token = match state
        .auth
        .login(&form.password, peer_ip(&req), Instant::now())
    {
        Ok(t) => t,
        Err(Verdict::Throttled(wait)) => return throttled(wait),
        Err(_) => {
            // At most a few lines a minute per address: it is blocked after a few.
            tracing::warn!(
                "web UI: a login with a wrong password was refused (from {})",
                peer_ip(&req)
            );
            // Slows down guessing.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut refused =
                page(&LOGIN.replace("{{message}}", "<p class=err>Wrong password.</p>"));
            *refused.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
            return refused;
        }
    };
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .insert_header((
            header::SET_COOKIE,
            format!(
                "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                SESSION_LIFETIME.as_secs()
            ),
        ))
        .finish()
}

/// `/metrics` for a scraper: the UI's rules apply (a bearer password when it has one).
async fn metrics(state: State, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = refusal(state.verdict(&req)) {
        return refused;
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render(&state.registry))
}

async fn status(state: State, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = refusal(state.verdict(&req)) {
        return refused;
    }
    let r = &state.registry;
    let gateways: Vec<_> = r
        .gateways
        .iter()
        .map(|g| {
            let f = g.figures();
            let config = g.config();
            let health = g.health.views();
            let health_of = |id: &str| health.iter().find(|h| h.destination_id == id);
            json!({
                "id": g.id(),
                "name": config.as_ref().map(|c| c.name.clone()),
                "enabled": config.as_ref().map(|c| c.enabled),
                "destinations": config.as_ref().map(|c| c.destinations.iter().map(|d| json!({
                    "id": d.id, "name": d.name, "type": d.kind.as_str(),
                    "resource": sg_proto::hostport::host_port(&d.resource_host, d.resource_port),
                    // F31: cloud destinations are the node's to reach, so not judged here.
                    "healthy": (d.kind.is_on_premises()).then(|| health_of(&d.id).is_none_or(|h| h.healthy)),
                    "health_reason": health_of(&d.id).map(|h| h.reason.clone()).filter(|r| !r.is_empty()),
                })).collect::<Vec<_>>()).unwrap_or_default(),
                "client_ports": g.listeners().iter().map(|l| json!({
                    "destination_id": l.destination_id, "name": l.name, "address": l.address,
                    "resource": l.resource, "listening": l.error.is_none(), "error": l.error,
                })).collect::<Vec<_>>(),
                "acl": g.acl().to_strings(),
                "acl_unnamed": sg_proto::acl::unnamed_targets(!g.acl().is_empty(), g.acl_default),
                "figures": { "transmitted": f.transmitted, "received": f.received,
                             "total_connections": f.total_connections, "active_connections": f.active_connections },
                "sessions": g.sessions().iter().map(|s| json!({
                    "session_id": s.session_id, "server": s.server, "node_id": s.node_id, "region": s.region,
                    "connected_at": humantime::format_rfc3339_seconds(s.connected_at).to_string(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let t = r.totals();
    HttpResponse::Ok().json(json!({
        "client_id": r.client_id,
        "version": sg_proto::version::PRODUCT_VERSION,
        "log_level": r.log.level().to_string(),
        "log_filters": r.log.filters(),
        "totals": { "transmitted": t.transmitted, "received": t.received,
                    "total_connections": t.total_connections, "active_connections": t.active_connections },
        "gateways": gateways,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AclBody {
    gateway: String,
    rules: Vec<String>,
}

async fn set_acl(state: State, req: HttpRequest, body: web::Json<AclBody>) -> HttpResponse {
    if let Some(refused) = refusal(state.verdict(&req)) {
        return refused;
    }
    let Some(gw) = state.registry.gateway(&body.gateway) else {
        return HttpResponse::NotFound().json(json!({ "error": "not_found", "message": format!("this client does not serve gateway {}", body.gateway) }));
    };
    // The same reading as --acl-file: blank lines and comments skipped, errors name the line.
    let rules = match sg_proto::acl::parse_file(&body.rules.join("\n")) {
        Ok(rules) => rules.iter().map(|r| r.to_string()).collect(),
        Err(e) => {
            return HttpResponse::BadRequest()
                .json(json!({ "error": "invalid_rule", "message": e.0 }))
        }
    };
    match gw.push_acl(rules) {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "sent to the node" })),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({ "error": "not_connected", "message": e })),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelBody {
    level: String,
}

async fn set_level(state: State, req: HttpRequest, body: web::Json<LevelBody>) -> HttpResponse {
    if let Some(refused) = refusal(state.verdict(&req)) {
        return refused;
    }
    match body.level.parse::<LogLevel>() {
        Ok(level) => match state.registry.log.set_level(level) {
            Ok(()) => HttpResponse::Ok().json(json!({ "log_level": level.to_string() })),
            Err(e) => {
                HttpResponse::InternalServerError().json(json!({ "error": "log", "message": e }))
            }
        },
        Err(e) => {
            HttpResponse::BadRequest().json(json!({ "error": "invalid_level", "message": e }))
        }
    }
}

/// Starts the UI on its own thread. Returns the address it listens on, or why not.
pub fn start(config: &UiConfig, registry: Arc<Registry>) -> Result<std::net::SocketAddr, String> {
    let listener = std::net::TcpListener::bind(config.listen).map_err(|e| {
        format!(
            "web UI not started: cannot listen on {}: {e}",
            config.listen
        )
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let state = web::Data::new(UiState {
        registry,
        auth: UiAuth::new(config.password.clone()),
    });
    std::thread::Builder::new()
        .name("sg-ui".into())
        .spawn(move || {
            let system = actix_rt::System::new();
            let served = system.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .app_data(web::JsonConfig::default().limit(256 * 1024))
                        .route("/", web::get().to(index))
                        .route("/login", web::get().to(login_page))
                        .route("/login", web::post().to(login))
                        .route("/api/status", web::get().to(status))
                        .route("/metrics", web::get().to(metrics))
                        .route("/api/acl", web::put().to(set_acl))
                        .route("/api/log-level", web::put().to(set_level))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)?
                .run();
                server.await
            });
            if let Err(e) = served {
                tracing::error!("web UI stopped: {e}");
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(addr)
}

const LOGIN: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>sg-client — log in</title>
<style>body{font-family:system-ui,sans-serif;background:#f4f6f8;display:flex;justify-content:center;margin-top:12vh}
form{background:#fff;padding:2em 2.5em;border-radius:10px;box-shadow:0 2px 10px #0002}
input{font-size:1em;padding:.5em;margin:.6em 0;width:16em}button{font-size:1em;padding:.5em 1.5em}.err{color:#b00}</style></head>
<body><form method="post" action="/login"><h2>sg-client</h2>{{message}}
<label>Password<br><input type="password" name="password" id="password" autofocus></label><br>
<button type="submit" id="login">Log in</button></form></body></html>"#;

const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>sg-client</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1d2733}
header{background:#1f3a5f;color:#fff;padding:.8em 1.5em}header small{opacity:.75;margin-left:1em}
main{padding:1em 1.5em}.cards{display:flex;gap:1em;flex-wrap:wrap}
.card{background:#fff;border-radius:8px;padding:.8em 1.2em;min-width:11em;box-shadow:0 1px 4px #0001}
.card b{display:block;font-size:1.6em;margin-top:.2em}
section{background:#fff;border-radius:8px;padding:1em 1.2em;margin-top:1em;box-shadow:0 1px 4px #0001}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3em .6em;border-bottom:1px solid #e3e7eb}
textarea{width:100%;min-height:6em;font-family:monospace}.muted{color:#667}
</style></head><body>
<header><b>sg-client</b><small id="who"></small></header>
<main>
<div class="cards">
 <div class="card" title="bytes sent by cloud applications to the private services">transmitted<b id="tx">–</b></div>
 <div class="card" title="bytes sent by the private services back to cloud applications">received<b id="rx">–</b></div>
 <div class="card">connections, total<b id="total">–</b></div>
 <div class="card">connections, active<b id="active">–</b></div>
</div>
<section><h3>Log level</h3>
 <select id="level"><option>ERROR</option><option>WARN</option><option>INFO</option><option>DEBUG</option><option>TRACE</option></select>
 <button id="set-level">Set</button> <span id="level-msg" class="muted"></span></section>
<div id="gateways"></div>
</main>
<script>
// Text from the node goes in as text, never as HTML.
function table(el, head, rows) {
  el.replaceChildren();
  for (const [i, cells] of [head, ...rows].entries()) {
    const tr = el.insertRow();
    for (const c of cells) {
      const td = document.createElement(i === 0 ? 'th' : 'td');
      td.textContent = String(c);
      tr.appendChild(td);
    }
  }
}
const fmt = n => n >= 1e9 ? (n/1e9).toFixed(2)+' GB' : n >= 1e6 ? (n/1e6).toFixed(2)+' MB' : n >= 1e3 ? (n/1e3).toFixed(1)+' kB' : n+' B';
let drawn = {};
async function refresh() {
  const r = await fetch('/api/status');
  if (r.status === 401) { location.href = '/login'; return; }
  const s = await r.json();
  document.getElementById('who').textContent = s.client_id + ' · sg ' + s.version;
  document.getElementById('tx').textContent = fmt(s.totals.transmitted);
  document.getElementById('rx').textContent = fmt(s.totals.received);
  document.getElementById('total').textContent = s.totals.total_connections;
  document.getElementById('active').textContent = s.totals.active_connections;
  if (!document.getElementById('level').dataset.touched) document.getElementById('level').value = s.log_level;
  const box = document.getElementById('gateways');
  for (const g of s.gateways) {
    let el = document.getElementById('gw-' + g.id);
    if (!el) {
      el = document.createElement('section'); el.id = 'gw-' + g.id;
      el.innerHTML = `<h3>Gateway <span class="gid"></span> <span class="muted gname"></span></h3>
        <p class="figs muted"></p><table class="sessions"></table><h4>Destinations</h4><table class="dests"></table><h4>Client ports (cloud destinations)</h4><table class="ports"></table>
        <h4>ACL</h4><p class="acl-unnamed muted"></p><textarea class="acl"></textarea><br><button class="save-acl">Save ACL</button> <span class="acl-msg muted"></span>`;
      box.appendChild(el);
      el.querySelector('.save-acl').onclick = async () => {
        const rules = el.querySelector('.acl').value.split('\n').map(l => l.trim()).filter(l => l);
        const a = await fetch('/api/acl', {method:'PUT', headers:{'content-type':'application/json'}, body: JSON.stringify({gateway: g.id, rules})});
        const answer = await a.json();
        el.querySelector('.acl-msg').textContent = answer.status || answer.message;
        drawn[g.id] = null;
      };
    }
    el.querySelector('.gid').textContent = g.id;
    el.querySelector('.gname').textContent = (g.name || '') + (g.enabled === false ? ' (disabled)' : '');
    el.querySelector('.figs').textContent = `transmitted ${fmt(g.figures.transmitted)}, received ${fmt(g.figures.received)}, ${g.figures.total_connections} connections, ${g.figures.active_connections} active`;
    table(el.querySelector('.sessions'), ['node', 'region', 'server', 'since'],
      g.sessions.map(x => [x.node_id, x.region, x.server, x.connected_at]));
    table(el.querySelector('.dests'), ['name', 'type', 'resource', 'health'],
      g.destinations.map(d => [d.name, d.type, d.resource,
        d.healthy === null ? '–' : d.healthy ? 'healthy' : 'unhealthy: ' + (d.health_reason || '')]));
    table(el.querySelector('.ports'), ['listening on', 'cloud resource', 'destination', 'state'],
      g.client_ports.map(p => [p.address, p.resource, p.name, p.listening ? 'listening' : 'not listening: ' + p.error]));
    el.querySelector('.acl-unnamed').textContent = g.acl_unnamed;
    const acl = g.acl.join('\n');
    const ta = el.querySelector('.acl');
    if (drawn[g.id] !== acl && document.activeElement !== ta) { ta.value = acl; drawn[g.id] = acl; }
  }
}
document.getElementById('level').onchange = e => e.target.dataset.touched = '1';
document.getElementById('set-level').onclick = async () => {
  const level = document.getElementById('level').value;
  const r = await fetch('/api/log-level', {method:'PUT', headers:{'content-type':'application/json'}, body: JSON.stringify({level})});
  document.getElementById('level-msg').textContent = r.ok ? 'log level is now ' + level : 'refused';
  delete document.getElementById('level').dataset.touched;
};
refresh(); setInterval(refresh, 1000);
</script></body></html>"#;
