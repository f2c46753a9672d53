//! `checkpoint_sink = "syslog"`: checkpoints as RFC 5424 messages over TCP
//! (RFC 6587 octet counting) to a collector (`"syslog"` is
//! `127.0.0.1:601`, or `"syslog:HOST:PORT"`). A thread of its own owns the
//! connection, so a slow or absent collector never stalls the audit
//! writer: messages wait in a small queue (the oldest are dropped when it
//! is full, and the newest checkpoint covers everything before it anyway)
//! and the connection is retried at the next message.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use super::time::write_rfc3339_micros;

/// Facility authpriv (10) * 8 + severity informational (6).
const PRI: u8 = 86;
/// Messages waiting for the collector.
const QUEUE: usize = 64;
/// Connect and write deadline for the collector.
const DEADLINE: Duration = Duration::from_secs(2);

/// The sending end held by the writer thread.
pub struct Syslog {
    tx: SyncSender<Vec<u8>>,
}

impl Syslog {
    /// Starts the sender thread for `addr`.
    pub fn start(addr: SocketAddr) -> io::Result<Syslog> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("regate-audit-syslog".into())
            .spawn(move || run(addr, rx))?;
        Ok(Syslog { tx })
    }

    /// Queues one checkpoint line. Never waits. The line keeps its
    /// newline, so a collector's raw capture holds one message per line.
    pub fn send(&self, line: &[u8]) -> io::Result<()> {
        let msg = frame(line, SystemTime::now());
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "syslog collector is not keeping up; a checkpoint copy was dropped",
            )),
            Err(TrySendError::Disconnected(_)) => Err(io::Error::other("syslog sender stopped")),
        }
    }
}

/// `LEN SP <86>1 TIME HOST regate PID checkpoint - MSG`.
pub fn frame(msg: &[u8], now: SystemTime) -> Vec<u8> {
    let mut m = Vec::with_capacity(msg.len() + 96);
    m.extend_from_slice(format!("<{PRI}>1 ").as_bytes());
    write_rfc3339_micros(now, &mut m);
    m.push(b' ');
    m.extend_from_slice(hostname().as_bytes());
    m.extend_from_slice(format!(" regate {} checkpoint - ", std::process::id()).as_bytes());
    m.extend_from_slice(msg);
    let mut out = format!("{} ", m.len()).into_bytes();
    out.extend_from_slice(&m);
    out
}

/// The host name (RFC 5424 HOSTNAME: printable ASCII, at most 255), or `-`.
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if name.is_empty() {
        "-".into()
    } else {
        name
    }
}

fn run(addr: SocketAddr, rx: Receiver<Vec<u8>>) {
    let mut conn: Option<TcpStream> = None;
    let mut ok = true;
    for msg in rx {
        let sent = (|| -> io::Result<()> {
            if conn.is_none() {
                let s = TcpStream::connect_timeout(&addr, DEADLINE)?;
                s.set_write_timeout(Some(DEADLINE))?;
                s.set_nodelay(true)?;
                conn = Some(s);
            }
            match conn.as_mut() {
                Some(s) => s.write_all(&msg),
                None => Ok(()),
            }
        })();
        match (&sent, ok) {
            (Err(e), true) => {
                tracing::error!(target: "regate::audit", collector = %addr, error = %e, "syslog checkpoint_sink failing; retrying at the next checkpoint");
            }
            (Ok(()), false) => {
                tracing::info!(target: "regate::audit", collector = %addr, "syslog checkpoint_sink recovered");
            }
            _ => {}
        }
        ok = sent.is_ok();
        if !ok {
            conn = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_octet_counted_rfc5424() {
        let f = frame(b"{\"checkpoint\":1}\n", std::time::UNIX_EPOCH);
        let text = String::from_utf8(f).unwrap();
        let (len, rest) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
        assert!(
            rest.starts_with("<86>1 1970-01-01T00:00:00.000000Z "),
            "{rest}"
        );
        assert!(rest.contains(" regate "), "{rest}");
        assert!(
            rest.ends_with(" checkpoint - {\"checkpoint\":1}\n"),
            "{rest}"
        );
    }
}
