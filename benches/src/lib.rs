//! Load generation and target services for `scripts/loadtest.sh` and the quickstart.
//!
//! - [`http_server`]: a small keep-alive HTTP/1.1 server (the quickstart's demo service).

pub mod http_server;
