//! Keeping freed memory from staying with the process.
//!
//! glibc raises its mmap threshold after large blocks are freed, so later multi-megabyte
//! payloads come from the heap and their pages stay with the process: after a few 10 MB
//! arguments the gateway held ~140 MB. A fixed threshold keeps large blocks mmapped (returned
//! to the system on free), and a small arena count bounds per-thread heaps.

/// Blocks at least this large are mmapped and unmapped on free.
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;
/// malloc arenas; the default is 8 per core.
const ARENA_MAX: libc::c_int = 4;

/// Applies the allocator settings; call once at the start of `main`.
pub fn limit_retained_memory() {
    // SAFETY: mallopt only adjusts allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}
