//! A recording proxy for the PostgreSQL wire protocol: forwards bytes both ways and records
//! the SQL the client sends (simple and extended queries) and how many data rows the
//! server returns. It shows what actually crosses the connection to the warehouse.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default, Clone)]
pub struct Capture {
    pub statements: Vec<String>,
    pub data_rows: u64,
}

#[derive(Clone)]
pub struct PgProxy {
    pub port: u16,
    capture: Arc<Mutex<Capture>>,
}

impl PgProxy {
    /// Starts a proxy to `upstream` (host:port) on a free loopback port.
    pub async fn start(upstream: &str) -> PgProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let capture = Arc::new(Mutex::new(Capture::default()));
        let upstream = upstream.to_string();
        let c = capture.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                let c = c.clone();
                tokio::spawn(async move { pump(client, server, c).await });
            }
        });
        PgProxy { port, capture }
    }

    pub fn take(&self) -> Capture {
        std::mem::take(&mut *self.capture.lock().unwrap())
    }
}

async fn pump(client: TcpStream, server: TcpStream, capture: Arc<Mutex<Capture>>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = {
        let capture = capture.clone();
        tokio::spawn(async move {
            // Client → server: the startup packet (and an SSL request) have no type byte.
            let mut parser = Parser::default();
            parser.untyped = 1;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                for (t, payload) in parser.feed(&buf[..n]) {
                    let sql = match t {
                        b'Q' => Some(cstr(&payload, 0)),
                        b'P' => {
                            let name_end = payload.iter().position(|&b| b == 0).unwrap_or(0);
                            Some(cstr(&payload, name_end + 1))
                        }
                        _ => None,
                    };
                    if let Some(sql) = sql {
                        capture.lock().unwrap().statements.push(sql);
                    }
                    if t == 0 && payload.len() >= 4 && payload[..4] == [0x04, 0xd2, 0x16, 0x2f] {
                        // An SSLRequest: the startup packet follows, also without a type byte.
                        parser.untyped += 1;
                    }
                }
                if sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        })
    };
    let down = tokio::spawn(async move {
        let mut parser = Parser::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let rows = parser.feed(&buf[..n]).into_iter().filter(|(t, _)| *t == b'D').count() as u64;
            capture.lock().unwrap().data_rows += rows;
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let _ = tokio::join!(up, down);
}

fn cstr(payload: &[u8], from: usize) -> String {
    let rest = payload.get(from..).unwrap_or(&[]);
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).to_string()
}

/// Splits a byte stream into messages: (type, payload). Untyped messages get type 0.
#[derive(Default)]
struct Parser {
    buf: Vec<u8>,
    untyped: usize,
}

impl Parser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.untyped > 0 {
                if self.buf.len() < 4 {
                    break;
                }
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
                if len < 4 || self.buf.len() < len {
                    break;
                }
                out.push((0, self.buf[4..len].to_vec()));
                self.buf.drain(..len);
                self.untyped -= 1;
                continue;
            }
            if self.buf.len() < 5 {
                break;
            }
            let t = self.buf[0];
            let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if self.buf.len() < 1 + len {
                break;
            }
            out.push((t, self.buf[5..1 + len].to_vec()));
            self.buf.drain(..1 + len);
        }
        out
    }
}
