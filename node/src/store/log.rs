//! The evidence log: every accepted envelope, verbatim, append-only. The source of
//! truth from which every index is rebuilt.
//!
//! Segments `log/<first ordinal, 16 hex digits>.seg` hold framed records:
//!
//! ```text
//! magic "SYNR" | u32 payload length | u32 CRC-32 of payload | payload
//! payload = u16 header length | header | RFC 8785 envelope bytes
//! header  = u64 ordinal | i64 received_at (µs) | i64 date_added base (µs) | u16 len | received_from
//! ```
//!
//! All integers are little-endian. A record is acknowledged only after `fsync` of the
//! segment returns. On open, a torn record at the tail (a crash mid-append, never
//! acknowledged) is cut off; a bad record anywhere else is corruption and is reported.

use super::StoreError;
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

const MAGIC: &[u8; 4] = b"SYNR";
const FRAME: u64 = 12;
/// A new segment starts once the current one passes this size.
const SEGMENT_BYTES: u64 = 256 << 20;

/// Where an envelope's bytes are in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPos {
    /// Segment index (position in the segment list).
    pub segment: u32,
    /// Byte offset of the envelope bytes in the segment.
    pub offset: u64,
    /// Length of the envelope bytes.
    pub len: u32,
}

/// Receipt metadata stored with each envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// Local sequence number (0, 1, 2, …) in this node's order.
    pub ordinal: u64,
    /// When this node received it (µs since the epoch).
    pub received_at: i64,
    /// First TAXII `date_added` (µs) available to objects this envelope adds.
    pub date_added_base: i64,
    /// The peer it came from, or `local` for a publish on this node.
    pub received_from: String,
}

/// One record read back from the log.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Receipt metadata.
    pub header: RecordHeader,
    /// The canonical envelope bytes.
    pub envelope: Vec<u8>,
    /// Where the envelope bytes are.
    pub pos: LogPos,
}

struct Segment {
    first_ordinal: u64,
    file: Arc<File>,
    path: PathBuf,
}

/// The append-only evidence log.
pub struct EvidenceLog {
    dir: PathBuf,
    segments: RwLock<Vec<Segment>>,
    /// Size of the last segment (its append position).
    tail: std::sync::Mutex<u64>,
    next_ordinal: std::sync::atomic::AtomicU64,
    /// A new segment starts once the current one passes this size.
    segment_bytes: u64,
    /// Set when a write, `fsync` or cut failed in a way that leaves what is on disk
    /// unknown: the log then takes nothing more until the node restarts and re-reads
    /// it. (A failed `fsync` must never be followed by another as if the data were
    /// safe: the kernel may have dropped the pages it could not write and report the
    /// next `fsync` clean.)
    unsafe_since: std::sync::Mutex<Option<Unsafe>>,
    /// Failures to inject into the next writes (tests).
    #[cfg(test)]
    pub(crate) faults: std::sync::Mutex<Vec<Fault>>,
}

/// Why the log stopped taking records (see [`EvidenceLog::unsafe_since`]).
#[derive(Debug, Clone)]
struct Unsafe {
    path: PathBuf,
    kind: std::io::ErrorKind,
    message: String,
}

/// The two I/O steps of an append a test can make fail.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Write,
    Sync,
}

/// A failure a test makes the log's next I/O call return.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The next write of records fails with `EIO`.
    Write,
    /// The next `fsync` of records fails with `EIO`.
    Sync,
    /// The next write fails with `ENOSPC` (a full disk).
    DiskFull,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn encode_header(h: &RecordHeader) -> Vec<u8> {
    let mut b = Vec::with_capacity(26 + h.received_from.len());
    b.extend_from_slice(&h.ordinal.to_le_bytes());
    b.extend_from_slice(&h.received_at.to_le_bytes());
    b.extend_from_slice(&h.date_added_base.to_le_bytes());
    let from = h.received_from.as_bytes();
    let n = from.len().min(u16::MAX as usize);
    b.extend_from_slice(&(n as u16).to_le_bytes());
    b.extend_from_slice(&from[..n]);
    b
}

/// Records appended to one segment, not yet written: the framing of each (frame and
/// receipt header) and the envelope bytes it frames.
struct Pending<'a> {
    segment: u32,
    file: Arc<File>,
    path: PathBuf,
    /// Segment size before these records.
    start: u64,
    /// Bytes these records take.
    len: u64,
    framing: Vec<Vec<u8>>,
    envelopes: Vec<&'a [u8]>,
}

/// `write_all` for a list of slices (the standard library's is not stable yet).
fn write_all_vectored(file: &File, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    let mut f = file;
    while !slices.is_empty() {
        match f.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn decode_header(b: &[u8]) -> Option<RecordHeader> {
    let u64_at = |i: usize| b.get(i..i + 8).and_then(|s| s.try_into().ok());
    let ordinal = u64::from_le_bytes(u64_at(0)?);
    let received_at = i64::from_le_bytes(u64_at(8)?);
    let date_added_base = i64::from_le_bytes(u64_at(16)?);
    let n = u16::from_le_bytes(b.get(24..26)?.try_into().ok()?) as usize;
    let received_from = String::from_utf8(b.get(26..26 + n)?.to_vec()).ok()?;
    Some(RecordHeader {
        ordinal,
        received_at,
        date_added_base,
        received_from,
    })
}

/// Result of scanning one segment.
struct Scan {
    records: Vec<LogRecord>,
    /// Offset after the last good record.
    good_end: u64,
    /// Whether bytes after `good_end` exist (a torn or corrupt tail).
    trailing: bool,
}

fn scan_segment(file: &File, segment: u32, from: u64, path: &Path) -> Result<Scan, StoreError> {
    let len = file.metadata().map_err(io(path))?.len();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(from)).map_err(io(path))?;
    let mut pos = from;
    let mut records = Vec::new();
    loop {
        if pos == len {
            return Ok(Scan {
                records,
                good_end: pos,
                trailing: false,
            });
        }
        let mut frame = [0u8; FRAME as usize];
        if len - pos < FRAME || reader.read_exact(&mut frame).is_err() {
            break;
        }
        let plen = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]) as u64;
        let crc = u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]);
        if &frame[..4] != MAGIC || len - pos - FRAME < plen {
            break;
        }
        let mut payload = vec![0u8; plen as usize];
        if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            break;
        }
        let hlen = match payload.get(..2) {
            Some(h) => u16::from_le_bytes([h[0], h[1]]) as usize,
            None => break,
        };
        let Some(header) = payload.get(2..2 + hlen).and_then(decode_header) else {
            break;
        };
        let env_off = pos + FRAME + 2 + hlen as u64;
        let envelope = payload.split_off(2 + hlen);
        records.push(LogRecord {
            header,
            pos: LogPos {
                segment,
                offset: env_off,
                len: envelope.len() as u32,
            },
            envelope,
        });
        pos += FRAME + plen;
    }
    Ok(Scan {
        records,
        good_end: pos,
        trailing: true,
    })
}

impl EvidenceLog {
    /// Opens the log in `dir`, creating it if needed, and cuts a torn tail.
    ///
    /// Returns the log and every record at or after ordinal `replay_from` (those the
    /// index may not have seen yet).
    pub fn open(dir: &Path, replay_from: u64) -> Result<(EvidenceLog, Vec<LogRecord>), StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .flatten()
            .filter_map(|e| {
                let p = e.path();
                let stem = p.file_stem()?.to_str()?.to_string();
                (p.extension()? == "seg")
                    .then(|| u64::from_str_radix(&stem, 16).ok().map(|n| (n, p)))
                    .flatten()
            })
            .collect();
        names.sort();
        let mut segments = Vec::new();
        let mut replay = Vec::new();
        let mut next_ordinal = 0u64;
        let mut tail = 0u64;
        let count = names.len();
        let firsts: Vec<u64> = names.iter().map(|(f, _)| *f).collect();
        for (i, (first, path)) in names.into_iter().enumerate() {
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            let last = i + 1 == count;
            // Segment i holds ordinals [first_i, first_{i+1}): only segments that may
            // hold records ≥ replay_from, and the last one (to find the tail), are read.
            let must_read = last || firsts.get(i + 1).is_some_and(|&nf| nf > replay_from);
            if last {
                next_ordinal = first;
            }
            if must_read {
                let scan = scan_segment(&file, i as u32, 0, &path)?;
                if scan.trailing {
                    if !last {
                        return Err(StoreError::Corrupt(format!(
                            "evidence log segment {} is damaged at byte {} (not at the tail)",
                            path.display(),
                            scan.good_end
                        )));
                    }
                    tracing::warn!(
                        segment = %path.display(),
                        at = scan.good_end,
                        "cutting a torn record at the end of the evidence log (never acknowledged)"
                    );
                    file.set_len(scan.good_end).map_err(io(&path))?;
                    file.sync_all().map_err(io(&path))?;
                }
                if last {
                    if let Some(r) = scan.records.last() {
                        next_ordinal = r.header.ordinal + 1;
                    }
                    tail = scan.good_end;
                }
                replay.extend(
                    scan.records
                        .into_iter()
                        .filter(|r| r.header.ordinal >= replay_from),
                );
            }
            segments.push(Segment {
                first_ordinal: first,
                file: Arc::new(file),
                path,
            });
        }
        let log = EvidenceLog {
            dir: dir.to_path_buf(),
            segments: RwLock::new(segments),
            tail: std::sync::Mutex::new(tail),
            next_ordinal: std::sync::atomic::AtomicU64::new(next_ordinal),
            segment_bytes: SEGMENT_BYTES,
            unsafe_since: std::sync::Mutex::new(None),
            #[cfg(test)]
            faults: std::sync::Mutex::new(Vec::new()),
        };
        Ok((log, replay))
    }

    /// The same log with small segments, so that tests roll them.
    #[cfg(test)]
    fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// The ordinal the next appended record gets.
    pub fn next_ordinal(&self) -> u64 {
        self.next_ordinal.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Appends records (headers carry their ordinals, which must continue the log) and
    /// makes them durable before returning their positions.
    ///
    /// A batch goes into one segment (a new one starts before a batch, once the last
    /// one is full), so that a failed append leaves nothing of its batch behind: a
    /// batch split over two segments could fail after the first part was made durable,
    /// and the next append would then reuse its ordinals.
    ///
    /// Callers serialise appends (the store holds its ingest lock).
    pub fn append(&self, records: &[(RecordHeader, &[u8])]) -> Result<Vec<LogPos>, StoreError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        self.check_safe()?;
        let mut out = Vec::with_capacity(records.len());
        let mut pending: Option<Pending<'_>> = None;
        if let Some((first, _)) = records.first() {
            self.roll_if_needed(&mut tail, first.ordinal, &mut pending)?;
        }
        for (header, env) in records {
            let p = match &mut pending {
                Some(p) => p,
                None => {
                    let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
                    let Some(last) = segs.last() else {
                        return Err(StoreError::Corrupt("no log segment".into()));
                    };
                    pending.insert(Pending {
                        segment: (segs.len() - 1) as u32,
                        file: last.file.clone(),
                        path: last.path.clone(),
                        start: *tail,
                        len: 0,
                        framing: Vec::with_capacity(records.len()),
                        envelopes: Vec::with_capacity(records.len()),
                    })
                }
            };
            let h = encode_header(header);
            let plen = 2 + h.len() + env.len();
            // The payload's CRC is computed over its parts: the envelope bytes are
            // written from where they are, never copied into a log buffer.
            let mut crc = crc32fast::Hasher::new();
            crc.update(&(h.len() as u16).to_le_bytes());
            crc.update(&h);
            crc.update(env);
            let mut framing = Vec::with_capacity(FRAME as usize + 2 + h.len());
            framing.extend_from_slice(MAGIC);
            framing.extend_from_slice(&(plen as u32).to_le_bytes());
            framing.extend_from_slice(&crc.finalize().to_le_bytes());
            framing.extend_from_slice(&(h.len() as u16).to_le_bytes());
            framing.extend_from_slice(&h);
            out.push(LogPos {
                segment: p.segment,
                offset: p.start + p.len + framing.len() as u64,
                len: env.len() as u32,
            });
            p.len += (framing.len() + env.len()) as u64;
            p.framing.push(framing);
            p.envelopes.push(env);
        }
        self.write_pending(&mut tail, &mut pending)?;
        if let Some(last) = records.last() {
            self.next_ordinal
                .store(last.0.ordinal + 1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(out)
    }

    /// Refuses to append once a failure left the log in an unknown state.
    fn check_safe(&self) -> Result<(), StoreError> {
        let u = self.unsafe_since.lock().unwrap_or_else(|p| p.into_inner());
        match u.as_ref() {
            Some(u) => Err(StoreError::LogUnsafe {
                path: u.path.display().to_string(),
                source: std::io::Error::new(u.kind, u.message.clone()),
            }),
            None => Ok(()),
        }
    }

    /// Stops the log taking records: what is on disk is unknown after `e`.
    fn make_unsafe(&self, path: &Path, e: std::io::Error) -> StoreError {
        tracing::error!(path = %path.display(), error = %e, "the evidence log could not be made durable: it takes nothing more until the node restarts");
        *self.unsafe_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Unsafe {
            path: path.to_path_buf(),
            kind: e.kind(),
            message: e.to_string(),
        });
        StoreError::LogUnsafe {
            path: path.display().to_string(),
            source: e,
        }
    }

    /// The failure a test injected for this stage of a write, if any.
    #[cfg(test)]
    fn injected(&self, stage: Stage) -> std::io::Result<()> {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let error = match (f.first(), stage) {
            (Some(Fault::Write), Stage::Write) => libc::EIO,
            (Some(Fault::DiskFull), Stage::Write) => libc::ENOSPC,
            (Some(Fault::Sync), Stage::Sync) => libc::EIO,
            _ => return Ok(()),
        };
        f.remove(0);
        Err(std::io::Error::from_raw_os_error(error))
    }

    /// Outside tests nothing is injected.
    #[cfg(not(test))]
    fn injected(&self, _: Stage) -> std::io::Result<()> {
        Ok(())
    }

    /// Writes the pending records of one segment with one vectored write and `fsync`s
    /// them. A write refused for lack of space cuts the segment back to where they
    /// started (nothing else changed: the node takes records again once there is
    /// room); any other failed write, a failed `fsync` or a failed cut makes the log
    /// unsafe ([`EvidenceLog::make_unsafe`]).
    fn write_pending(
        &self,
        tail: &mut u64,
        pending: &mut Option<Pending<'_>>,
    ) -> Result<(), StoreError> {
        let Some(p) = pending.take() else {
            return Ok(());
        };
        if p.len == 0 {
            return Ok(());
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(2 * p.framing.len());
        for (framing, env) in p.framing.iter().zip(&p.envelopes) {
            slices.push(IoSlice::new(framing));
            slices.push(IoSlice::new(env));
        }
        let written = self
            .injected(Stage::Write)
            .and_then(|()| write_all_vectored(&p.file, &mut slices));
        if let Err(e) = written {
            // Nothing of this batch is acknowledged: cut what reached the file so the
            // next append starts at a record boundary.
            if let Err(cut) = p.file.set_len(p.start) {
                return Err(self.make_unsafe(&p.path, cut));
            }
            if !super::io_is_storage_full(&e) {
                return Err(self.make_unsafe(&p.path, e));
            }
            return Err(io(&p.path)(e));
        }
        if let Err(e) = self.injected(Stage::Sync).and_then(|()| p.file.sync_data()) {
            let _ = p.file.set_len(p.start);
            return Err(self.make_unsafe(&p.path, e));
        }
        *tail = p.start + p.len;
        Ok(())
    }

    fn roll_if_needed(
        &self,
        tail: &mut u64,
        ordinal: u64,
        pending: &mut Option<Pending<'_>>,
    ) -> Result<(), StoreError> {
        let empty = self.segments.read().map(|s| s.is_empty()).unwrap_or(true);
        let size = pending.as_ref().map_or(*tail, |p| p.start + p.len);
        if !empty && size < self.segment_bytes {
            return Ok(());
        }
        self.write_pending(tail, pending)?;
        let path = self.dir.join(format!("{ordinal:016x}.seg"));
        // Readable by this user only, like the directory that holds it.
        let file = std::os::unix::fs::OpenOptionsExt::mode(
            OpenOptions::new().create(true).read(true).append(true),
            0o600,
        )
        .open(&path)
        .map_err(io(&path))?;
        // The new segment's directory entry must be durable too: records written
        // into a segment whose entry is lost are lost with it.
        if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
            return Err(self.make_unsafe(&self.dir, e));
        }
        let mut segs = self.segments.write().unwrap_or_else(|p| p.into_inner());
        segs.push(Segment {
            first_ordinal: ordinal,
            file: Arc::new(file),
            path,
        });
        *tail = 0;
        Ok(())
    }

    /// Reads `len` bytes at `offset` of a segment.
    pub fn read_at(&self, segment: u32, offset: u64, len: u32) -> Result<Vec<u8>, StoreError> {
        let mut buf = Vec::new();
        self.read_onto(segment, offset, len, &mut buf)?;
        Ok(buf)
    }

    /// Appends `len` bytes at `offset` of a segment to `out`; on error `out` is left
    /// as it was.
    ///
    /// Feed pages and pushes are built this way: each envelope is read straight into
    /// the body that carries it, not into a buffer of its own that is then copied
    /// (megabytes per page, through freshly faulted memory both times).
    pub fn read_onto(
        &self,
        segment: u32,
        offset: u64,
        len: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let (file, path) = {
            let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
            let s = segs
                .get(segment as usize)
                .ok_or_else(|| StoreError::Corrupt(format!("no log segment {segment}")))?;
            (s.file.clone(), s.path.clone())
        };
        let start = out.len();
        out.resize(start + len as usize, 0);
        if let Err(e) = file.read_exact_at(&mut out[start..], offset) {
            out.truncate(start);
            return Err(io(&path)(e));
        }
        Ok(())
    }

    /// Reads every record, in order (rebuild).
    pub fn read_all(
        &self,
        mut each: impl FnMut(LogRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let segs: Vec<(Arc<File>, PathBuf)> = self
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|s| (s.file.clone(), s.path.clone()))
            .collect();
        for (i, (file, path)) in segs.iter().enumerate() {
            let scan = scan_segment(file, i as u32, 0, path)?;
            for r in scan.records {
                each(r)?;
            }
        }
        Ok(())
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> u64 {
        super::sled_engine::dir_size(&self.dir)
    }

    /// First ordinal of each segment (diagnostics).
    pub fn segment_starts(&self) -> Vec<u64> {
        self.segments
            .read()
            .map(|s| s.iter().map(|x| x.first_ordinal).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(ordinal: u64) -> RecordHeader {
        RecordHeader {
            ordinal,
            received_at: 1000 + ordinal as i64,
            date_added_base: 2000 + ordinal as i64,
            received_from: "peer-x".into(),
        }
    }

    #[test]
    fn append_read_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (log, replay) = EvidenceLog::open(dir.path(), 0).unwrap();
        assert!(replay.is_empty());
        let pos = log
            .append(&[
                (h(0), b"{\"a\":1}".as_slice()),
                (h(1), b"{\"b\":2}".as_slice()),
            ])
            .unwrap();
        assert_eq!(
            log.read_at(pos[1].segment, pos[1].offset, pos[1].len)
                .unwrap(),
            b"{\"b\":2}"
        );
        drop(log);
        let (log, replay) = EvidenceLog::open(dir.path(), 1).unwrap();
        assert_eq!(replay.len(), 1);
        assert_eq!(replay[0].header, h(1));
        assert_eq!(replay[0].envelope, b"{\"b\":2}");
        assert_eq!(replay[0].pos, pos[1]);
        assert_eq!(log.next_ordinal(), 2);
        let p = log.append(&[(h(2), b"{}".as_slice())]).unwrap();
        assert_eq!(log.read_at(p[0].segment, p[0].offset, 2).unwrap(), b"{}");
    }

    /// Reading onto a body appends the record's bytes; a read that fails (past the
    /// end of a segment, or an unknown segment) leaves the body as it was.
    #[test]
    fn read_onto_appends_or_leaves_the_body_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EvidenceLog::open(dir.path(), 0).unwrap();
        let pos = log
            .append(&[
                (h(0), b"{\"a\":1}".as_slice()),
                (h(1), b"{\"b\":2}".as_slice()),
            ])
            .unwrap();
        let mut body = b"[".to_vec();
        log.read_onto(pos[0].segment, pos[0].offset, pos[0].len, &mut body)
            .unwrap();
        body.push(b',');
        log.read_onto(pos[1].segment, pos[1].offset, pos[1].len, &mut body)
            .unwrap();
        assert_eq!(body, b"[{\"a\":1},{\"b\":2}");
        let before = body.clone();
        assert!(
            log.read_onto(pos[1].segment, pos[1].offset, pos[1].len + 100, &mut body)
                .is_err()
        );
        assert_eq!(body, before, "a read past the end adds nothing");
        assert!(log.read_onto(7, 0, 1, &mut body).is_err());
        assert_eq!(body, before, "an unknown segment adds nothing");
    }

    #[test]
    fn large_batches_stay_in_one_segment_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EvidenceLog::open(dir.path(), 0).unwrap();
        let log = log.with_segment_bytes(100_000);
        // More records in one batch than one vectored write takes (1,024 slices on
        // Linux), and segments rolled between batches.
        let bodies: Vec<Vec<u8>> = (0..2_100u64)
            .map(|i| {
                format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i as usize % 97)).into_bytes()
            })
            .collect();
        let batch: Vec<(RecordHeader, &[u8])> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (h(i as u64), b.as_slice()))
            .collect();
        let mut pos = log.append(&batch[..1_500]).unwrap();
        pos.extend(log.append(&batch[1_500..1_600]).unwrap());
        pos.extend(log.append(&batch[1_600..]).unwrap());
        // A full segment is left for a new one before a batch, never within one.
        assert_eq!(log.segment_starts(), vec![0, 1_500]);
        for (p, b) in pos.iter().zip(&bodies) {
            assert_eq!(&log.read_at(p.segment, p.offset, p.len).unwrap(), b);
        }
        drop(log);
        let (log, replay) = EvidenceLog::open(dir.path(), 0).unwrap();
        assert_eq!(replay.len(), bodies.len());
        for (i, r) in replay.iter().enumerate() {
            assert_eq!(r.header, h(i as u64));
            assert_eq!(r.envelope, bodies[i]);
            assert_eq!(r.pos, pos[i]);
        }
        assert_eq!(log.next_ordinal(), 2_100);
    }

    #[test]
    fn torn_tail_is_cut_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EvidenceLog::open(dir.path(), 0).unwrap();
        log.append(&[(h(0), b"first".as_slice())]).unwrap();
        log.append(&[(h(1), b"second".as_slice())]).unwrap();
        drop(log);
        let seg = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let len = std::fs::metadata(&seg).unwrap().len();
        // Simulate a crash in the middle of writing the second record.
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 3).unwrap();
        let (log, replay) = EvidenceLog::open(dir.path(), 0).unwrap();
        assert_eq!(replay.len(), 1);
        assert_eq!(log.next_ordinal(), 1);
        log.append(&[(h(1), b"again".as_slice())]).unwrap();
        drop(log);
        let (_, replay) = EvidenceLog::open(dir.path(), 0).unwrap();
        let bodies: Vec<_> = replay.iter().map(|r| r.envelope.clone()).collect();
        assert_eq!(bodies, vec![b"first".to_vec(), b"again".to_vec()]);
    }

    #[test]
    fn flipped_byte_in_the_tail_record_is_detected_by_crc() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EvidenceLog::open(dir.path(), 0).unwrap();
        log.append(&[(h(0), b"first".as_slice()), (h(1), b"second".as_slice())])
            .unwrap();
        drop(log);
        let seg = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0xff;
        std::fs::write(&seg, bytes).unwrap();
        let (_, replay) = EvidenceLog::open(dir.path(), 0).unwrap();
        assert_eq!(replay.len(), 1);
    }
}
