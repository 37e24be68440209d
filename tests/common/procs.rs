//! Processes as /proc shows them: a tree below a pid, its CPU time and memory, and killing it
//! whole (egress starts each recording's handler in a session of its own, and the handler starts
//! Xvfb and Chromium, so neither a process group nor killing the worker alone reaches them all).

/// One process as /proc shows it.
pub struct ProcStat {
    pub pid: u32,
    pub parent: u32,
    pub name: String,
    /// User and system CPU time, in clock ticks.
    pub ticks: u64,
    pub rss_kb: u64,
    pub pss_kb: u64,
}

/// What /proc says of `pid`, if it still exists.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold spaces; the fields after it are space-separated.
    let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let kb = |key: &str| {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcStat {
        pid,
        parent: f[1].parse().ok()?,
        name: name.to_string(),
        ticks,
        rss_kb: kb("Rss:"),
        pss_kb: kb("Pss:"),
    })
}

/// `root` and every process below it.
pub fn process_tree(root: u32) -> Vec<ProcStat> {
    let all: Vec<ProcStat> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter_map(proc_stat)
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(all.iter().filter(|p| p.parent == parent).map(|p| p.pid));
        i += 1;
    }
    all.into_iter().filter(|p| tree.contains(&p.pid)).collect()
}

/// SIGKILL to `root` and every process below it, from one snapshot taken while the tree is
/// intact (killing from the top first would re-parent the rest out of reach).
pub fn kill_tree(root: u32) {
    for ProcStat { pid, .. } in process_tree(root) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
