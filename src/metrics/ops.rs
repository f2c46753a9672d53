//! Metrics an operator needs beyond requests: the standard `process_*`
//! series (CPU, memory, open fds, start time), connections refused by the
//! connection caps (by reason, every reason present from the start), and
//! the TLS certificate's expiry time. Registered into [`super::Metrics`]'
//! registry by [`OpsMetrics::new`].

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

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
    cert_not_after: IntGauge,
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
        let cert_not_after = IntGauge::new(
            "regate_tls_cert_not_after_seconds",
            "Expiry (notAfter) of the served TLS certificate, Unix seconds.",
        )?;
        r.register(Box::new(cert_not_after.clone()))?;
        Ok(OpsMetrics {
            refused_total: refused.with_label_values(&[Refusal::MaxConnections.as_str()]),
            refused_per_ip: refused.with_label_values(&[Refusal::MaxConnectionsPerIp.as_str()]),
            cert_not_after,
        })
    }

    /// One connection refused at accept.
    pub fn connection_refused(&self, why: Refusal) {
        match why {
            Refusal::MaxConnections => self.refused_total.inc(),
            Refusal::MaxConnectionsPerIp => self.refused_per_ip.inc(),
        }
    }

    /// The served certificate's notAfter (at start and after each reload).
    pub fn set_cert_not_after(&self, unix_seconds: i64) {
        self.cert_not_after.set(unix_seconds);
    }
}
