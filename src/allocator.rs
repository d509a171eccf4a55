//! The process's heap policy: one glibc malloc arena for every thread.
//!
//! glibc gives each thread that allocates under contention an arena of its own (up to eight
//! per core) and returns freed memory to the arena it came from. The pipeline allocates a
//! buffer on one thread and frees it on another (rows encoded by the batch stage, sent and
//! dropped by publish), so each arena keeps its own free but unreturned pages: at max speed
//! that put the bridge's peak resident set at 48 to 84 MiB for 18 MiB of heap in use, and at
//! 45 to 48 MiB with one arena, at the same throughput (`docs/performance.md`, "End to end").
//!
//! Call [`use_one_arena`] first thing in `main`, before any thread starts: glibc fixes its
//! arena limit when a second thread first needs an arena.

/// Limits glibc malloc to one arena. Does nothing on other C libraries, whose allocators
/// were not measured.
pub fn use_one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets an allocator parameter; it takes no pointer and is
        // called before the process starts any thread, as glibc requires for this setting.
        #[allow(unsafe_code)]
        let accepted = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        debug_assert_eq!(accepted, 1, "glibc accepts M_ARENA_MAX");
    }
}
