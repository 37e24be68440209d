//! The allocator's side of memory that comes back: glibc keeps freed blocks for reuse, which
//! for argon2id's 19 MiB buffers means RSS that grows with every burst of sign-ins and never
//! shrinks (223 MB after 200 registrations was measured). Blocks of 1 MiB and more are instead
//! mapped and unmapped on their own, so they return to the system when freed; the cost is a page
//! fault per touched page (about 1 ms per hash, next to argon2's tens of milliseconds).

/// Allocations at least this large bypass glibc's arenas.
const MMAP_THRESHOLD: i32 = 1 << 20;

/// Sets glibc's fixed mmap threshold (which also turns off its dynamic raising of that threshold
/// after a large free, the behaviour that kept the buffers). Called once at start.
pub fn return_large_blocks() {
    // SAFETY: mallopt only changes allocator tuning; it is safe to call at any time.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    if ok != 1 {
        tracing::debug!("mallopt(M_MMAP_THRESHOLD) was refused; large blocks stay in arenas");
    }
}
