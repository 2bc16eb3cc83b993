//! Keeping a software adapter's CPU cores awake while a loop of steps runs.
//!
//! On a CPU adapter (lavapipe) every dispatch wakes the driver's worker threads and then waits for
//! them; between dispatches they sleep on a condition variable. When nothing else is runnable the
//! core halts, and in a virtual machine waking a halted vCPU costs the hypervisor tens of
//! microseconds, which a LeNet step (28 dispatches) pays each time. OpenMP runtimes, and with them
//! PyTorch on the CPU, avoid the same cost by spin-waiting before they sleep.
//!
//! [`KeepWarm`] does the equivalent from outside the driver: one thread per core at Linux's
//! `SCHED_IDLE` priority spins while the guard lives. `SCHED_IDLE` threads only get cycles that no
//! other thread wants, and a waking driver thread preempts them at once, so the spinners never
//! take time from the work; they only keep the cores from halting. Each spinner is pinned to its
//! own core of the process's affinity mask, so that no core is left without one while another
//! holds two (in the scratch A/B of the W1 step, pinned spinners were 1-2 % faster). The guard
//! stops and joins them when dropped. It does nothing on real GPUs, off Linux, or when the user turns it off
//! (`--keep-warm off`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The `--keep-warm` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeepWarmMode {
    /// On for CPU adapters on Linux, off otherwise (the default).
    #[default]
    Auto,
    /// On wherever the platform allows it (Linux), whatever the adapter.
    On,
    /// Never.
    Off,
}

impl KeepWarmMode {
    /// Parses `auto`, `on` or `off`.
    pub fn parse(s: &str) -> Option<KeepWarmMode> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(KeepWarmMode::Auto),
            "on" => Some(KeepWarmMode::On),
            "off" => Some(KeepWarmMode::Off),
            _ => None,
        }
    }

    /// Whether spinners run for an adapter of this type.
    pub fn enabled_for(self, device_type: wgpu::DeviceType) -> bool {
        cfg!(target_os = "linux")
            && match self {
                KeepWarmMode::Auto => device_type == wgpu::DeviceType::Cpu,
                KeepWarmMode::On => true,
                KeepWarmMode::Off => false,
            }
    }
}

/// Spinning idle-priority threads, one per core, until dropped. See the module docs.
pub struct KeepWarm {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl KeepWarm {
    /// Starts `n` spinners (none when `n` is 0). A spinner that cannot lower itself to
    /// `SCHED_IDLE` exits at once instead of competing with the work.
    pub fn start(n: usize) -> KeepWarm {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = allowed_cpus();
        let threads = (0..n)
            .filter_map(|i| {
                let stop = stop.clone();
                let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
                std::thread::Builder::new()
                    .name(format!("incq-warm-{i}"))
                    .spawn(move || {
                        if !lower_to_idle_priority() {
                            return;
                        }
                        // unpinned where that fails: it still spins, wherever it is scheduled
                        if let Some(c) = cpu {
                            pin_to(c);
                        }
                        while !stop.load(Ordering::Relaxed) {
                            for _ in 0..256 {
                                std::hint::spin_loop();
                            }
                        }
                    })
                    .ok()
            })
            .collect();
        KeepWarm { stop, threads }
    }

    /// A guard that runs nothing.
    pub fn none() -> KeepWarm {
        KeepWarm::start(0)
    }

    /// How many spinners were started.
    pub fn spinners(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for KeepWarm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Moves the calling thread to `SCHED_IDLE`; false where that is not possible.
#[cfg(target_os = "linux")]
fn lower_to_idle_priority() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler with pid 0 changes only the calling thread's policy, and `param`
    // is a valid sched_param that outlives the call.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn lower_to_idle_priority() -> bool {
    false
}

/// The CPUs in this process's affinity mask, in order (empty where it cannot be read).
#[cfg(target_os = "linux")]
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data, for which all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity with pid 0 writes at most size_of::<cpu_set_t>() bytes into `set`.
    let ok =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if ok != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: c < CPU_SETSIZE, the set's capacity.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Pins the calling thread to `cpu`; false where that is not possible.
#[cfg(target_os = "linux")]
fn pin_to(cpu: usize) -> bool {
    if cpu >= libc::CPU_SETSIZE as usize {
        return false;
    }
    // SAFETY: all zeros is the empty set; CPU_SET writes bit `cpu` < CPU_SETSIZE; sched_setaffinity
    // with pid 0 changes only the calling thread's mask and reads size_of::<cpu_set_t>() bytes.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_cpu: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_choose_adapters() {
        assert_eq!(KeepWarmMode::parse("AUTO"), Some(KeepWarmMode::Auto));
        assert_eq!(KeepWarmMode::parse("on"), Some(KeepWarmMode::On));
        assert_eq!(KeepWarmMode::parse("off"), Some(KeepWarmMode::Off));
        assert_eq!(KeepWarmMode::parse("yes"), None);
        let linux = cfg!(target_os = "linux");
        assert_eq!(KeepWarmMode::Auto.enabled_for(wgpu::DeviceType::Cpu), linux);
        assert!(!KeepWarmMode::Auto.enabled_for(wgpu::DeviceType::DiscreteGpu));
        assert_eq!(
            KeepWarmMode::On.enabled_for(wgpu::DeviceType::DiscreteGpu),
            linux
        );
        assert!(!KeepWarmMode::Off.enabled_for(wgpu::DeviceType::Cpu));
    }

    /// The `/proc/self/task` entries named `incq-warm-*`, with their scheduling policy.
    #[cfg(target_os = "linux")]
    fn spinner_policies() -> Vec<u32> {
        spinners().into_iter().map(|(p, _)| p).collect()
    }

    /// Each spinner's scheduling policy and the CPUs it may run on (`Cpus_allowed_list`).
    #[cfg(target_os = "linux")]
    fn spinners() -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("incq-warm-") {
                continue;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // Fields after the parenthesised name; `policy` is field 41 of stat(5).
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let policy = rest.split(' ').nth(41 - 3).unwrap().parse().unwrap();
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap_or("")
                .trim()
                .to_string();
            out.push((policy, cpus));
        }
        out
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn spinners_run_at_idle_priority_and_stop_when_dropped() {
        let warm = KeepWarm::start(2);
        assert_eq!(warm.spinners(), 2);
        // Give the threads time to lower their policy; SCHED_IDLE is 5.
        let mut seen = Vec::new();
        for _ in 0..200 {
            seen = spinner_policies();
            if seen.len() == 2 && seen.iter().all(|&p| p == 5) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(seen, vec![5, 5], "spinners and their policies");
        // each pinned to one CPU of the process's mask, distinct ones where it has two or more
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty(), "the process's affinity mask");
        let mut pinned: Vec<String> = Vec::new();
        for _ in 0..200 {
            pinned = spinners().into_iter().map(|(_, c)| c).collect();
            if pinned.iter().all(|c| c.parse::<usize>().is_ok()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut got: Vec<usize> = pinned
            .iter()
            .map(|c| c.parse().unwrap_or_else(|_| panic!("spinner CPUs '{c}'")))
            .collect();
        got.sort_unstable();
        let mut want: Vec<usize> = (0..2).map(|i| cpus[i % cpus.len()]).collect();
        want.sort_unstable();
        assert_eq!(got, want, "the spinners' CPUs");
        drop(warm);
        assert!(spinner_policies().is_empty(), "spinners left after drop");
        assert_eq!(KeepWarm::none().spinners(), 0);
    }
}
