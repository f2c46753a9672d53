//! Request heads as the simulated node receives them: a lenient parse
//! that records anything ending in a blank line, and strict judgement on
//! top (a [`Head::defect`] or an ambiguous [`Head::framing`] means 400).
//! No I/O here; `http1.rs` reads the bytes.

/// A request head as received.
#[derive(Clone, Debug, Default)]
pub(crate) struct Head {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Why the head is not acceptable HTTP/1.1, if it is not.
    pub defect: Option<&'static str>,
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked,
}

impl Head {
    pub(crate) fn header_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_all(name).next()
    }

    /// Whether the connection may carry another request after this one.
    pub(crate) fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.header_all("connection").any(|v| {
                v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
        };
        match self.version.as_str() {
            "HTTP/1.1" => !has("close"),
            _ => has("keep-alive"),
        }
    }

    /// The body framing, or why it is ambiguous (400, as nginx would).
    pub(crate) fn framing(&self) -> Result<Framing, &'static str> {
        let te: Vec<&[u8]> = self.header_all("transfer-encoding").collect();
        let cl: Vec<&[u8]> = self.header_all("content-length").collect();
        if !te.is_empty() {
            if self.version != "HTTP/1.1" {
                return Err("transfer-encoding on HTTP/1.0");
            }
            if !cl.is_empty() {
                return Err("both content-length and transfer-encoding");
            }
            if te.len() != 1 || !te[0].eq_ignore_ascii_case(b"chunked") {
                return Err("unsupported transfer-encoding");
            }
            return Ok(Framing::Chunked);
        }
        match cl.as_slice() {
            [] => Ok(Framing::Empty),
            [v] => parse_decimal(v)
                .map(|n| {
                    if n == 0 {
                        Framing::Empty
                    } else {
                        Framing::Length(n)
                    }
                })
                .ok_or("invalid content-length"),
            _ => Err("more than one content-length"),
        }
    }

    pub(crate) fn expects_continue(&self) -> bool {
        self.version == "HTTP/1.1"
            && self
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
    }
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn flag(head: &mut Head, why: &'static str) {
    head.defect.get_or_insert(why);
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses everything up to and including the blank line. Never fails: what
/// cannot be understood is still recorded, with a defect.
pub(crate) fn parse_head(raw: &[u8]) -> Head {
    let mut head = Head::default();
    let mut lines = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&[u8]> = request_line.split(|&b| b == b' ').collect();
    if let [m, t, v] = parts.as_slice() {
        head.method = lossy(m);
        head.target = lossy(t);
        head.version = lossy(v);
        if m.is_empty() || !m.iter().all(|&b| is_tchar(b)) {
            flag(&mut head, "invalid method");
        }
        if t.is_empty() || !t.iter().all(|&b| (0x21..0x7f).contains(&b)) {
            flag(&mut head, "invalid request-target");
        }
        if !matches!(*v, b"HTTP/1.1" | b"HTTP/1.0") {
            flag(&mut head, "unsupported HTTP version");
        }
    } else {
        head.method = lossy(request_line);
        flag(&mut head, "malformed request line");
    }
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            flag(&mut head, "obsolete line folding");
            head.headers.push((String::new(), line.to_vec()));
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            flag(&mut head, "header line without a colon");
            head.headers.push((lossy(line), Vec::new()));
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            flag(&mut head, "invalid header name");
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            flag(&mut head, "control byte in a header value");
        }
        head.headers.push((lossy(name), value.to_vec()));
    }
    if head.version == "HTTP/1.1" && head.header_all("host").count() != 1 {
        flag(&mut head, "HTTP/1.1 needs exactly one Host");
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        parse_head(raw.as_bytes())
    }

    #[test]
    fn keeps_target_and_headers_verbatim() {
        let h = head("GET /v1/bdbs?dry_run&extra_info_keys=a&extra_info_keys=b HTTP/1.1\r\nHost: x\r\nX-A:  1 \r\nx-a: 2\r\n\r\n");
        assert_eq!(h.defect, None);
        assert_eq!(
            h.target,
            "/v1/bdbs?dry_run&extra_info_keys=a&extra_info_keys=b"
        );
        let names: Vec<&str> = h.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Host", "X-A", "x-a"]);
        assert_eq!(
            h.header_all("x-a").collect::<Vec<_>>(),
            [&b"1"[..], &b"2"[..]]
        );
    }

    #[test]
    fn defects_are_recorded_not_dropped() {
        for raw in [
            "GET /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
            "GET /x HTTP/1.1\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET /x HTTP/2.0\r\nHost: a\r\n\r\n",
            "GET  /x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        ] {
            let h = head(raw);
            assert!(h.defect.is_some(), "{raw:?}");
            assert!(!h.method.is_empty(), "{raw:?}");
        }
    }

    #[test]
    fn framing_rules() {
        let f =
            |extra: &str| head(&format!("POST /x HTTP/1.1\r\nHost: x\r\n{extra}\r\n")).framing();
        assert_eq!(f(""), Ok(Framing::Empty));
        assert_eq!(f("Content-Length: 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(f("Transfer-Encoding: Chunked\r\n"), Ok(Framing::Chunked));
        for bad in [
            "Content-Length: 3\r\nContent-Length: 3\r\n",
            "Content-Length: +3\r\n",
            "Content-Length: 0x3\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 99999999999999999999\r\n",
            "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked, identity\r\n",
            "Transfer-Encoding: xchunked\r\n",
        ] {
            assert!(f(bad).is_err(), "{bad:?}");
        }
    }
}
