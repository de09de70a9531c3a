//! Starting writeback of a large output while it is still being written.
//!
//! A GGUF of a billion bytes written without fsync leaves a billion dirty bytes in the page
//! cache. When the temp file is renamed over an existing output, ext4 (`auto_da_alloc`) allocates
//! and submits all of them when the file is closed, on the writer's thread, after every other
//! thread has finished: on the 1 GB convert benchmark that `close` took 0.45–1.0 s, as long as
//! the conversion itself. [`Writeback`] submits the pages behind the writer instead, on a thread
//! of its own (`sync_file_range(SYNC_FILE_RANGE_WRITE)`: start the I/O, never wait for it), so
//! that the work overlaps the conversion and little is left to do at `close`. It only moves
//! work the kernel does anyway (at `close`, or when the dirty pages expire) to where a core is
//! free, and it shortens the time a crash can lose the file's contents.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// Bytes submitted per system call: large enough to cost little per byte, small enough that
/// dropping a [`Writeback`] never waits long for the call in progress.
const STEP: u64 = 16 << 20;

/// Page size the submitted ranges are cut to: the page holding the write position may still be
/// written to, so only pages below it are submitted.
const PAGE: u64 = 4096;

/// Submits a file's dirty pages for writeback behind a writer that fills it front to back,
/// on a background thread. Dropping it stops the thread (pages not yet submitted stay dirty,
/// for the kernel to write as usual).
pub struct Writeback {
    tx: Option<Sender<u64>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Writeback {
    /// Starts the helper for `file` (the descriptor is duplicated for the helper thread). On
    /// systems without `sync_file_range`, or if the descriptor or thread cannot be had, a
    /// [`Writeback`] that does nothing: it is only an optimization.
    pub fn new(file: &File) -> Writeback {
        let stop = Arc::new(AtomicBool::new(false));
        // (Built only when returned: dropping a Writeback raises the shared stop flag.)
        let idle = |stop| Writeback {
            tx: None,
            stop,
            thread: None,
        };
        if !cfg!(target_os = "linux") {
            return idle(stop);
        }
        let Ok(file) = file.try_clone() else {
            return idle(stop);
        };
        let (tx, rx) = channel();
        let flag = stop.clone();
        let Ok(thread) = std::thread::Builder::new()
            .name("tinylm-writeback".into())
            .spawn(move || submit_behind(&file, &rx, &flag))
        else {
            return idle(stop);
        };
        Writeback {
            tx: Some(tx),
            stop,
            thread: Some(thread),
        }
    }

    /// Tells the helper that every byte below `end` has been written (and will not be written
    /// again). Never blocks.
    pub fn written_to(&self, end: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(end);
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The helper thread: submits whole [`STEP`]s of complete pages as the written end advances.
fn submit_behind(file: &File, rx: &Receiver<u64>, stop: &AtomicBool) {
    let mut done = 0u64;
    while let Ok(mut end) = rx.recv() {
        // Only the furthest point matters: catch up on everything reported meanwhile.
        while let Ok(e) = rx.try_recv() {
            end = end.max(e);
        }
        let end = end / PAGE * PAGE;
        while end >= done + STEP {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            start_writeback(file, done, STEP);
            done += STEP;
        }
    }
}

/// Starts writeback of `len` bytes at `at` without waiting for it. Errors are ignored: this is
/// only a hint, and the kernel writes the pages later in any case.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, at: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(at), Ok(len)) = (libc::off64_t::try_from(at), libc::off64_t::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is open (owned by `file`) and the call touches no memory of ours.
    let _ =
        unsafe { libc::sync_file_range(file.as_raw_fd(), at, len, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _at: u64, _len: u64) {}

/// Drops the page cache of the file at `path`, if there is one, on a background thread: for an
/// output about to be replaced (a new file renamed over it). Replacing frees the old file's
/// cached pages inside the rename, on the writer's path once everything else is done (0.1–0.2 s
/// for a 1 GB GGUF); started when the new file is, the freeing overlaps the writing instead.
/// The file itself is untouched, and pages that are mapped, dirty or in use stay cached.
/// Join the handle before the rename.
pub fn forget_cached(path: &std::path::Path) -> Option<JoinHandle<()>> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    // Refuses anything but a regular file, without blocking on a FIFO.
    let file = super::input::open(path).ok()?;
    std::thread::Builder::new()
        .name("tinylm-forget".into())
        .spawn(move || drop_cache(&file))
        .ok()
}

#[cfg(target_os = "linux")]
fn drop_cache(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open (owned by `file`); the call touches no memory of ours.
    // Only a hint: errors change nothing.
    let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

#[cfg(not(target_os = "linux"))]
fn drop_cache(_file: &File) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::FileExt;

    /// Pages of `file`'s first `len` bytes that are dirty (written, writeback not started), from
    /// `cachestat(2)` (Linux 6.5); `None` where the call or the file system cannot tell: tmpfs
    /// and other memory file systems have no writeback to start.
    #[cfg(target_os = "linux")]
    fn dirty_pages(file: &File, len: u64) -> Option<u64> {
        use std::os::fd::AsRawFd;
        // SAFETY: fstatfs fills the struct we pass.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
            return None;
        }
        // ext4, xfs, btrfs: disk file systems where `sync_file_range` starts writeback.
        if ![0xEF53, 0x5846_5342, 0x9123_683E].contains(&(fs.f_type as u64)) {
            return None;
        }
        let range: [u64; 2] = [0, len];
        let mut stat = [0u64; 5];
        // SAFETY: cachestat (451 on every Linux architecture) reads `range` and fills `stat`,
        // both sized as the kernel's structs.
        let r = unsafe {
            libc::syscall(
                451,
                file.as_raw_fd(),
                range.as_ptr(),
                stat.as_mut_ptr(),
                0u32,
            )
        };
        (r == 0).then_some(stat[1])
    }

    #[test]
    fn a_file_written_with_writeback_behind_it_reads_back_whole() {
        // Writes that straddle pages and steps, reported in order, with the helper running:
        // the bytes must be exactly those written (writeback never loses or reorders data),
        // the helper must really start writeback of the steps behind the writer, and dropping
        // it mid-file must not block or fail.
        let mut f = tempfile::tempfile().unwrap();
        let wb = Writeback::new(&f);
        let piece: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i * 7 % 251) as u8).collect();
        let mut pos = 0u64;
        for _ in 0..14 {
            f.write_all_at(&piece, pos).unwrap();
            pos += piece.len() as u64;
            wb.written_to(pos);
        }
        #[cfg(target_os = "linux")]
        {
            // Dirty pages expire after 30 s by default: without the helper these would stay.
            let steps = pos / PAGE * PAGE / STEP * STEP;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while dirty_pages(&f, steps).is_some_and(|n| n > 0) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{:?} pages still dirty",
                    dirty_pages(&f, steps)
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        drop(wb);
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(back.len() as u64, pos);
        for c in back.chunks(piece.len()) {
            assert!(c == piece.as_slice());
        }
    }
}
