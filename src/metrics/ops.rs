//! Metrics an operator needs beyond requests: the standard `process_*`
//! series (CPU, memory, open fds, start time), connections refused by the
//! connection caps (by reason, every reason present from the start).
//! Registered into [`super::Metrics`]' registry by [`OpsMetrics::new`]
//! (the certificate's expiry is read live: see [`super::live`]).

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `limits.max_connections` reached.
    MaxConnections,
    /// `limits.max_connections_per_ip` reached for the peer's address.
    MaxConnectionsPerIp,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxConnectionsPerIp => "max_connections_per_ip",
        }
    }
}

/// The collectors; handles resolved once.
pub struct OpsMetrics {
    refused_total: IntCounter,
    refused_per_ip: IntCounter,
}

impl OpsMetrics {
    pub fn new(r: &Registry) -> prometheus::Result<OpsMetrics> {
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let refused = IntCounterVec::new(
            Opts::new(
                "regate_connections_refused_total",
                "Client connections closed at accept by a connection cap, by reason.",
            ),
            &["reason"],
        )?;
        r.register(Box::new(refused.clone()))?;
        Ok(OpsMetrics {
            refused_total: refused.with_label_values(&[Refusal::MaxConnections.as_str()]),
            refused_per_ip: refused.with_label_values(&[Refusal::MaxConnectionsPerIp.as_str()]),
        })
    }

    /// One connection refused at accept.
    pub fn connection_refused(&self, why: Refusal) {
        match why {
            Refusal::MaxConnections => self.refused_total.inc(),
            Refusal::MaxConnectionsPerIp => self.refused_per_ip.inc(),
        }
    }
}
