//! Writing the chained, sealed log files, and reading them back.

use super::*;

/// The log files of a folder, in chain order.
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let entries = std::fs::read_dir(dir).map_err(|e| AuditError::Io { path: dir.display().to_string(), reason: e.to_string() })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("audit-") && n.ends_with(".jsonl")
        })
        .collect();
    files.sort();
    Ok(files)
}

struct Writer {
    dir: PathBuf,
    node: String,
    key: SigningKey,
    config: AuditConfig,
    file: Option<File>,
    path: PathBuf,
    len: u64,
    day: String,
    index: u64,
    next_seq: u64,
    head: String,
    unsealed: u64,
    /// Set after a failed write that could not be undone; the next append reopens the file.
    broken: bool,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn today() -> String {
    Utc::now().format("%Y%m%d").to_string()
}

fn io(path: &Path, e: std::io::Error) -> AuditError {
    AuditError::Io { path: path.display().to_string(), reason: e.to_string() }
}

impl Writer {
    fn file_name(index: u64, day: &str) -> String {
        format!("audit-{index:06}-{day}.jsonl")
    }

    /// Finds the chain head in the existing files; drops a torn last line (a write cut by a
    /// crash: that record's answer never left, because the answer waits for the write).
    fn recover(&mut self) -> Result<Option<String>, AuditError> {
        let files = log_files(&self.dir)?;
        let mut note = None;
        for path in files.iter().rev() {
            let mut f = OpenOptions::new().read(true).write(true).open(path).map_err(|e| io(path, e))?;
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut text).map_err(|e| io(path, e))?;
            let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if complete < text.len() {
                f.set_len(complete as u64).map_err(|e| io(path, e))?;
                note = Some(format!("removed a torn record of {} bytes at the end of {}", text.len() - complete, path.display()));
            }
            let body = &text[..complete];
            let Some(last) = body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).last() else { continue };
            let line_no = body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
            let record: AuditRecord = serde_json::from_slice(last).map_err(|e| AuditError::Corrupt {
                path: path.display().to_string(),
                line: line_no,
                reason: e.to_string(),
            })?;
            self.next_seq = record.seq + 1;
            self.head = line_hash(last);
            self.unsealed = u64::from(record.event.kind != "seal");
            break;
        }
        self.index = files
            .last()
            .and_then(|p| p.file_name()?.to_str()?.get(6..12)?.parse::<u64>().ok())
            .map_or(0, |i| i);
        if let Some(last) = files.last() {
            self.open_file(last.clone())?;
            self.day = last.file_name().and_then(|n| n.to_str()).and_then(|n| n.get(13..21)).unwrap_or("").to_string();
        }
        Ok(note)
    }

    fn open_file(&mut self, path: PathBuf) -> Result<(), AuditError> {
        let f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io(&path, e))?;
        self.len = f.metadata().map_err(|e| io(&path, e))?.len();
        self.file = Some(f);
        self.path = path;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), AuditError> {
        let day = today();
        if self.file.is_some() && self.len > 0 {
            let next = Writer::file_name(self.index + 1, &day);
            self.seal_with(false, Some(next))?;
            self.index += 1;
        }
        self.day = day;
        let path = self.dir.join(Writer::file_name(self.index, &self.day));
        self.open_file(path)
    }

    fn write_line(&mut self, record: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(record).map_err(|e| AuditError::Io { path: self.path.display().to_string(), reason: e.to_string() })?;
        let hash = line_hash(&line);
        line.push(b'\n');
        let before = self.len;
        let path = self.path.clone();
        let fsync = self.config.fsync;
        let file = self.file.as_mut().ok_or_else(|| AuditError::Io { path: path.display().to_string(), reason: "not open".into() })?;
        let result = file.write_all(&line).and_then(|_| if fsync { file.sync_data() } else { file.flush() });
        if let Err(e) = result {
            // Undo a partial write so the chain stays whole; if that fails too, reopen later.
            if file.set_len(before).is_err() || file.seek(SeekFrom::End(0)).is_err() {
                self.broken = true;
            }
            return Err(io(&path, e));
        }
        self.len += line.len() as u64;
        self.head = hash;
        self.next_seq += 1;
        Ok(())
    }

    fn append(&mut self, event: AuditEvent) -> Result<Anchor, AuditError> {
        if self.broken {
            self.broken = false;
            self.file = None;
            self.recover()?;
        }
        if self.file.is_none() || self.len >= self.config.rotate_bytes || (self.config.rotate_daily && self.day != today()) {
            self.rotate()?;
        }
        let record = AuditRecord {
            seq: self.next_seq,
            time: now(),
            node: self.node.clone(),
            event,
            sealed_records: None,
            r#final: None,
            next_file: None,
            public_key: None,
            signature: None,
            prev_hash: self.head.clone(),
        };
        self.write_line(&record)?;
        self.unsealed += 1;
        Ok(Anchor { seq: record.seq, hash: self.head.clone() })
    }

    /// Starts a chain: its first record names the node, the time it was created and the
    /// key, signed by that key, so a log missing its first records is told apart from a
    /// whole one.
    fn genesis(&mut self) -> Result<(), AuditError> {
        if self.file.is_none() {
            self.rotate()?;
        }
        let time = now();
        let b64 = base64::engine::general_purpose::STANDARD;
        let public_key = b64.encode(self.key.verifying_key().as_bytes());
        let signature = self.key.sign(&genesis_message(&self.node, &time, &public_key));
        let record = AuditRecord {
            seq: self.next_seq,
            time,
            node: self.node.clone(),
            event: AuditEvent { kind: "genesis".into(), outcome: "ok".into(), ..Default::default() },
            sealed_records: None,
            r#final: None,
            next_file: None,
            public_key: Some(public_key),
            signature: Some(b64.encode(signature.to_bytes())),
            prev_hash: self.head.clone(),
        };
        self.write_line(&record)?;
        self.unsealed += 1;
        Ok(())
    }

    fn seal(&mut self, is_final: bool) -> Result<(), AuditError> {
        if self.file.is_none() {
            self.rotate()?;
        }
        self.seal_with(is_final, None)
    }

    fn seal_with(&mut self, is_final: bool, next_file: Option<String>) -> Result<(), AuditError> {
        let time = now();
        let signature = self.key.sign(&seal_message(&self.node, self.next_seq, &time, &self.head, is_final, next_file.as_deref()));
        let b64 = base64::engine::general_purpose::STANDARD;
        let record = AuditRecord {
            seq: self.next_seq,
            time,
            node: self.node.clone(),
            event: AuditEvent { kind: "seal".into(), outcome: "ok".into(), ..Default::default() },
            sealed_records: Some(self.unsealed),
            r#final: Some(is_final),
            next_file,
            public_key: Some(b64.encode(self.key.verifying_key().as_bytes())),
            signature: Some(b64.encode(signature.to_bytes())),
            prev_hash: self.head.clone(),
        };
        self.write_line(&record)?;
        self.unsealed = 0;
        Ok(())
    }
}

/// A node's audit log.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Mutex<Writer>>,
    limiter: Arc<Mutex<RefusalLimiter>>,
    pub node: String,
    pub dir: PathBuf,
    public_key: VerifyingKey,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({}, {})", self.node, self.dir.display())
    }
}

impl AuditLog {
    /// Opens (or starts) the log in `config.dir`, continuing an existing chain.
    pub fn open(config: &AuditConfig, node: &str) -> Result<AuditLog, AuditError> {
        std::fs::create_dir_all(&config.dir).map_err(|e| io(&config.dir, e))?;
        let key = load_or_create_key(&config.signing_key)?;
        let public_key = key.verifying_key();
        let mut w = Writer {
            dir: config.dir.clone(),
            node: node.to_string(),
            key,
            config: config.clone(),
            file: None,
            path: PathBuf::new(),
            len: 0,
            day: String::new(),
            index: 0,
            next_seq: 0,
            head: GENESIS.to_string(),
            unsealed: 0,
            broken: false,
        };
        let note = w.recover()?;
        if w.next_seq == 0 {
            w.genesis()?;
        }
        let limiter = RefusalLimiter::new(config.refusals_per_minute, config.refusals_per_address_per_minute, std::time::Duration::from_secs(60));
        let log = AuditLog {
            inner: Arc::new(Mutex::new(w)),
            limiter: Arc::new(Mutex::new(limiter)),
            node: node.to_string(),
            dir: config.dir.clone(),
            public_key,
        };
        if let Some(reason) = note {
            log.append_blocking(AuditEvent { kind: "recovery".into(), outcome: "ok".into(), reason: Some(reason), ..Default::default() })?;
        }
        log.append_blocking(AuditEvent { kind: "node_start".into(), outcome: "ok".into(), ..Default::default() })?;
        Ok(log)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Writer) -> Result<T, AuditError>) -> Result<T, AuditError> {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Appends a record durably; returns its place in the chain.
    pub fn append_blocking(&self, event: AuditEvent) -> Result<Anchor, AuditError> {
        self.with(|w| w.append(event))
    }

    /// Appends a record durably without blocking the async runtime.
    pub async fn append(&self, event: AuditEvent) -> Result<Anchor, AuditError> {
        let log = self.clone();
        tokio::task::spawn_blocking(move || log.append_blocking(event))
            .await
            .map_err(|e| AuditError::Io { path: self.dir.display().to_string(), reason: e.to_string() })?
    }

    /// Records a refusal, rate-limited per identity (`refusals_per_minute`) and per source
    /// address (`refusals_per_address_per_minute`): beyond either limit the refusal is
    /// counted and summarised in one `suppressed` record.
    pub fn refusal_blocking(&self, event: AuditEvent) -> Result<(), AuditError> {
        let (decision, summaries) = {
            let mut l = match self.limiter.lock() {
                Ok(l) => l,
                Err(poisoned) => poisoned.into_inner(),
            };
            l.admit(&event, std::time::Instant::now(), &now())
        };
        for s in summaries {
            self.append_blocking(s)?;
        }
        if decision == Decision::Record {
            self.append_blocking(event)?;
        }
        Ok(())
    }

    /// [`AuditLog::refusal_blocking`] without blocking the async runtime.
    pub async fn refusal(&self, event: AuditEvent) -> Result<(), AuditError> {
        let log = self.clone();
        tokio::task::spawn_blocking(move || log.refusal_blocking(event))
            .await
            .map_err(|e| AuditError::Io { path: self.dir.display().to_string(), reason: e.to_string() })?
    }

    /// The latest record: what the node hands other nodes as its chain head.
    pub fn head(&self) -> Option<Anchor> {
        self.with(|w| Ok((w.next_seq > 0).then(|| Anchor { seq: w.next_seq - 1, hash: w.head.clone() }))).ok().flatten()
    }

    /// Signs the chain head (if records were written since the last seal, or `is_final`),
    /// after writing the summaries of ended refusal windows (of all, when `is_final`).
    pub fn seal(&self, is_final: bool) -> Result<(), AuditError> {
        let summaries = {
            let mut l = match self.limiter.lock() {
                Ok(l) => l,
                Err(poisoned) => poisoned.into_inner(),
            };
            l.drain(std::time::Instant::now(), is_final)
        };
        for s in summaries {
            self.append_blocking(s)?;
        }
        self.with(|w| if w.unsealed > 0 || is_final { w.seal(is_final) } else { Ok(()) })
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.public_key
    }

    /// The log's files, in chain order.
    pub fn files(&self) -> Result<Vec<PathBuf>, AuditError> {
        log_files(&self.dir)
    }

    /// Seals every `interval` while records are being written. The task ends with the runtime.
    pub fn spawn_sealer(&self, interval: std::time::Duration) {
        let log = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                let l = log.clone();
                let r = tokio::task::spawn_blocking(move || l.seal(false)).await;
                if let Ok(Err(e)) = r {
                    tracing::error!(error = %e, "audit seal failed");
                }
            }
        });
    }
}

/// A log as Flight action results: one JSON object per chunk of at most 512 KiB,
/// `{"file": name, "content": text}`, chunks split at line ends.
pub fn audit_chunks(log: &AuditLog) -> Result<Vec<bytes::Bytes>, crate::error::NodeError> {
    let io = |e: AuditError| crate::error::NodeError::Internal(e.to_string());
    // Seal first, so the copy handed out is signed up to its last record.
    log.seal(false).map_err(|e| crate::error::NodeError::AuditUnavailable(e.to_string()))?;
    let mut out = Vec::new();
    for path in log.files().map_err(io)? {
        let text = std::fs::read_to_string(&path).map_err(|e| crate::error::NodeError::Internal(format!("{}: {e}", path.display())))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        let mut chunk = String::new();
        for line in text.split_inclusive('\n') {
            if chunk.len() + line.len() > 512 * 1024 && !chunk.is_empty() {
                out.push(bytes::Bytes::from(serde_json::json!({"file": name, "content": chunk}).to_string()));
                chunk = String::new();
            }
            chunk.push_str(line);
        }
        out.push(bytes::Bytes::from(serde_json::json!({"file": name, "content": chunk}).to_string()));
    }
    Ok(out)
}

/// Reassembles fetched chunks into files under `dir`; returns the files written.
pub fn write_chunks(dir: &Path, chunks: &[bytes::Bytes]) -> Result<Vec<PathBuf>, AuditError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut contents: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for c in chunks {
        let v: serde_json::Value = serde_json::from_slice(c).map_err(|e| AuditError::Io { path: dir.display().to_string(), reason: format!("bad chunk: {e}") })?;
        let name = v["file"].as_str().unwrap_or("").to_string();
        if !(name.starts_with("audit-") && name.ends_with(".jsonl") && !name.contains('/')) {
            return Err(AuditError::Io { path: dir.display().to_string(), reason: format!("unexpected file name '{name}'") });
        }
        contents.entry(name).or_default().push_str(v["content"].as_str().unwrap_or(""));
    }
    for (name, text) in contents {
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        files.push(path);
    }
    Ok(files)
}

/// Reads every record of a set of files, with its file, line and raw bytes.
pub fn read_records(files: &[PathBuf]) -> Result<Vec<(PathBuf, usize, Vec<u8>)>, AuditError> {
    let mut out = Vec::new();
    for path in files {
        let f = File::open(path).map_err(|e| io(path, e))?;
        let mut reader = BufReader::new(f);
        let mut line_no = 0;
        loop {
            let mut buf = Vec::new();
            let n = reader.read_until(b'\n', &mut buf).map_err(|e| io(path, e))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            if !buf.is_empty() {
                out.push((path.clone(), line_no, buf));
            }
        }
    }
    Ok(out)
}
