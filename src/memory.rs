//! Giving memory back to the system after churn: glibc's allocator settings for a
//! long-running server on a small machine, and trimming after clients and variants end.
//!
//! Measured (docs/RELIABILITY.md): after 144 clients of full-size variants came and went,
//! RSS stayed 52 MB above its baseline, and up to ~2.5 MB after stream churn: freed memory
//! kept by glibc, not leaked. Three causes, three settings:
//!
//! - glibc raises its mmap threshold each time a large mmapped block is freed (up to
//!   32 MiB), so the next transcoder's planes and output buffers come from the heap and stay
//!   there. A fixed `M_MMAP_THRESHOLD` of 128 KiB keeps every large buffer in a mapping of
//!   its own, returned to the system the moment it is freed.
//! - Each thread may get an arena of its own (up to 8 per core), each keeping its freed
//!   memory. `M_ARENA_MAX = 2`: the server's threads spend their time in system calls,
//!   not in malloc, so contention on two arenas does not show.
//! - Freed memory inside a heap is only returned by `malloc_trim`: done by the HTTP
//!   admission thread at most once a second after a stream or a variant has ended.
//!
//! Only the binary sets the allocator (`configure`): a program that uses frcstream as a
//! library keeps its own settings. Trimming is harmless to anyone.

use std::sync::atomic::{AtomicBool, Ordering};

/// Large blocks are always mapped on their own, returned when freed.
const MMAP_THRESHOLD_BYTES: i32 = 128 * 1024;
/// malloc arenas in all.
const ARENA_MAX: i32 = 2;

/// Something big was freed: worth a trim.
static TRIM_WANTED: AtomicBool = AtomicBool::new(false);

/// Sets glibc's allocator for a long-running server; call first thing in `main`.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (MMAP_THRESHOLD_BYTES, ARENA_MAX);
}

/// Asks for a trim soon (a stream or a variant ended).
pub fn want_trim() {
    TRIM_WANTED.store(true, Ordering::Relaxed);
}

/// Trims if a trim was asked for since the last one; the caller paces the calls.
pub fn trim_if_wanted() {
    if TRIM_WANTED.swap(false, Ordering::Relaxed) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free memory to the system.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
