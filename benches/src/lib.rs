//! Load generation and target services for `scripts/loadtest.sh` and the quickstart.
//!
//! - [`http_server`], [`bulk`] and [`echo`]: target services (a keep-alive HTTP server, a
//!   bulk sink/source, an echo server for held connections);
//! - [`http_load`]: keep-alive and new-connection-per-request HTTP load with latency
//!   percentiles;
//! - [`bulk`]: throughput in either direction;
//! - [`hold`]: holds thousands of idle connections and measures the RSS they cost;
//! - [`control`]: control-plane write latency and propagation, and many destinations;
//! - [`procstat`]: CPU time and RSS of processes, from /proc;
//! - [`report`]: the table, JSON and SVG chart of a run;
//! - [`timeline`]: success and failure per 100 ms around marked events (failover runs);
//! - [`wrk`]: Debian's wrk as a second, independent HTTP load generator.

pub mod bulk;
pub mod control;
pub mod echo;
pub mod hold;
pub mod http_load;
pub mod http_server;
pub mod procstat;
pub mod report;
pub mod timeline;
pub mod wrk;
