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
//! take time from the work; they only keep the cores from halting. They spin on `sched_yield`,
//! not on `pause` in user space: on one host the `pause` spinners cost 3-7 % of the W1 step and
//! the yielding ones gained 3 % (see `spin_once`). Each spinner is pinned to its
//! own core of the process's affinity mask, so that no core is left without one while another
//! holds two (in the scratch A/B of the W1 step, pinned spinners were 1-2 % faster).
//!
//! The guard also pins the driver's compute workers, one per core, for as long as it lives:
//! llvmpipe splits each dispatch's workgroups into one fixed share per worker, so a worker that
//! the scheduler moves onto the other's core, or that lands on a core whose caches hold the other
//! worker's data, holds up the whole dispatch (in the scratch A/B of the W1 step, pinned workers
//! were 1.03-1.09 times faster). The workers are not named, so a monitor thread finds them by
//! what they do: over a window of the loop, the threads of this process that used the most CPU,
//! other than the thread that made the guard and the guard's own, where they used at least twice
//! as much as any other (so the first window of `incq train`, in which another driver thread
//! outran a worker, picks nothing and the next one is watched). It gives up after ten windows.
//! On drop the guard stops and joins its threads and gives the workers back the process's whole
//! mask. It does nothing on real GPUs, off Linux, or when the user turns it off
//! (`--keep-warm off`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// The monitor that pins the driver's workers.
    pinner: Option<JoinHandle<()>>,
    /// The workers it pinned, and the mask they get back on drop.
    pinned: Arc<Mutex<Vec<i32>>>,
    cpus: Vec<usize>,
}

/// How long the monitor watches the threads before it picks the busiest, how many windows it
/// tries, and the CPU time (clock ticks, 10 ms) a worker must have used in the window.
const PIN_WINDOW: Duration = Duration::from_millis(200);
const PIN_TRIES: usize = 10;
const PIN_MIN_TICKS: u64 = 4;

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
                            spin_once();
                        }
                    })
                    .ok()
            })
            .collect();
        let pinned = Arc::new(Mutex::new(Vec::new()));
        let workers = n.min(cpus.len());
        let pinner = (workers > 0)
            .then(|| {
                let (stop, pinned, cpus) = (stop.clone(), pinned.clone(), cpus.clone());
                let caller = current_tid();
                let before = thread_ticks();
                std::thread::Builder::new()
                    .name("incq-pin".into())
                    .spawn(move || pin_workers(&stop, &pinned, &cpus, caller, before, workers))
                    .ok()
            })
            .flatten();
        KeepWarm {
            stop,
            threads,
            pinner,
            pinned,
            cpus,
        }
    }

    /// A guard that runs nothing.
    pub fn none() -> KeepWarm {
        KeepWarm::start(0)
    }

    /// How many spinners were started.
    pub fn spinners(&self) -> usize {
        self.threads.len()
    }

    /// The threads pinned so far (thread ids).
    pub fn pinned(&self) -> Vec<i32> {
        self.pinned.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl Drop for KeepWarm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..).chain(self.pinner.take()) {
            let _ = t.join();
        }
        for tid in self.pinned() {
            // a worker that has exited since cannot be restored, and needs nothing
            set_affinity(tid, &self.cpus);
        }
    }
}

/// One thread of this process: its id, name and CPU time so far (clock ticks).
#[derive(Clone, Debug)]
struct ThreadTicks {
    tid: i32,
    name: String,
    ticks: u64,
}

/// The monitor: waits a window of the loop, then pins the `n` busiest threads (see
/// [`pick_workers`]) to the first `n` CPUs of `cpus`, one each; tries again with the next window
/// while none qualify, up to PIN_TRIES windows or until `stop`.
fn pin_workers(
    stop: &AtomicBool,
    pinned: &Mutex<Vec<i32>>,
    cpus: &[usize],
    caller: i32,
    mut before: Vec<ThreadTicks>,
    n: usize,
) {
    let me = current_tid();
    for _ in 0..PIN_TRIES {
        let slices = 20;
        for _ in 0..slices {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(PIN_WINDOW / slices);
        }
        let after = thread_ticks();
        if let Some(tids) = pick_workers(&before, &after, &[caller, me], n, PIN_MIN_TICKS) {
            let mut p = match pinned.lock() {
                Ok(p) => p,
                Err(_) => return,
            };
            for (tid, &cpu) in tids.into_iter().zip(cpus) {
                if set_affinity(tid, &[cpu]) {
                    p.push(tid);
                }
            }
            return;
        }
        before = after;
    }
}

/// The `n` threads that used the most CPU between the two snapshots, busiest first, leaving out
/// `exclude` and the guard's spinners and monitor (named `incq-warm-*` and `incq-pin`) and
/// llvmpipe's raster threads (named `llvmpipe-*`, idle in compute work); `None` unless `n`
/// threads each used at least `min_ticks` and the next busiest at most half as much as the
/// least busy of them (so that a window in which the workers were not yet the busiest, as while
/// a loop starts, picks nothing).
fn pick_workers(
    before: &[ThreadTicks],
    after: &[ThreadTicks],
    exclude: &[i32],
    n: usize,
    min_ticks: u64,
) -> Option<Vec<i32>> {
    let mut busy: Vec<(u64, i32)> = after
        .iter()
        .filter(|t| {
            !exclude.contains(&t.tid)
                && !t.name.starts_with("incq-warm")
                && t.name != "incq-pin"
                && !t.name.starts_with("llvmpipe")
        })
        .filter_map(|t| {
            let was = before.iter().find(|b| b.tid == t.tid)?;
            Some((t.ticks.saturating_sub(was.ticks), t.tid))
        })
        .collect();
    busy.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let next = busy.get(n).map_or(0, |&(d, _)| d);
    busy.truncate(n);
    (n > 0 && busy.len() == n && busy.iter().all(|&(d, _)| d >= min_ticks && d >= 2 * next))
        .then(|| busy.into_iter().map(|(_, tid)| tid).collect())
}

/// Every thread of this process with its CPU time (empty where /proc cannot be read).
#[cfg(target_os = "linux")]
fn thread_ticks() -> Vec<ThreadTicks> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // after the parenthesised name: utime and stime are fields 14 and 15 of stat(5)
            let rest = stat.get(stat.rfind(')')? + 2..)?;
            let mut f = rest.split(' ').skip(14 - 3);
            let ticks = f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?;
            Some(ThreadTicks {
                tid,
                name: name.trim().to_string(),
                ticks,
            })
        })
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn thread_ticks() -> Vec<ThreadTicks> {
    Vec::new()
}

/// The calling thread's id.
#[cfg(target_os = "linux")]
fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

#[cfg(not(target_os = "linux"))]
fn current_tid() -> i32 {
    0
}

/// One turn of a spinner's loop: `sched_yield`, which keeps the core busy (it never halts) but
/// enters the kernel each turn instead of spinning in user space. In the scratch A/B of the W1
/// step on an AVX-512 host (60 alternating blocks of 15 steps in one process, workers pinned in
/// both), spinners that yielded were 1.033 times as fast as no spinners (train, ahead in 52 of
/// 60 blocks; 1.022 for inference), while spinners on `pause` loops were 0.93-0.97 times as
/// fast and a plain busy loop 0.935.
#[cfg(target_os = "linux")]
fn spin_once() {
    // SAFETY: sched_yield takes no arguments and only gives up the rest of this time slice.
    unsafe {
        libc::sched_yield();
    }
}

#[cfg(not(target_os = "linux"))]
fn spin_once() {
    for _ in 0..256 {
        std::hint::spin_loop();
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
fn pin_to(cpu: usize) -> bool {
    set_affinity(0, &[cpu])
}

/// Lets thread `tid` (0: the calling thread) of this process run only on `cpus`; false where
/// that is not possible (no such thread, or a CPU outside the set's range or the system's).
#[cfg(target_os = "linux")]
fn set_affinity(tid: i32, cpus: &[usize]) -> bool {
    if cpus.is_empty() || cpus.iter().any(|&c| c >= libc::CPU_SETSIZE as usize) {
        return false;
    }
    // SAFETY: all zeros is the empty set; CPU_SET writes bits < CPU_SETSIZE; sched_setaffinity
    // changes only thread `tid`'s mask and reads size_of::<cpu_set_t>() bytes of `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn set_affinity(_tid: i32, _cpus: &[usize]) -> bool {
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

    fn tt(tid: i32, name: &str, ticks: u64) -> ThreadTicks {
        ThreadTicks {
            tid,
            name: name.into(),
            ticks,
        }
    }

    #[test]
    fn the_busiest_other_threads_are_picked_as_workers() {
        let before = [
            tt(1, "incq", 10),
            tt(2, "incq", 5),
            tt(3, "incq", 0),
            tt(4, "incq", 0),
            tt(5, "incq-warm-0", 0),
            tt(6, "llvmpipe-0", 0),
            tt(7, "incq-pin", 0),
        ];
        let after = [
            tt(1, "incq", 90),        // the caller: left out however busy
            tt(2, "incq", 7),         // 2 ticks: below the threshold
            tt(3, "incq", 20),        // a worker
            tt(4, "incq", 30),        // the busiest worker
            tt(5, "incq-warm-0", 99), // a spinner
            tt(6, "llvmpipe-0", 50),  // a raster thread
            tt(7, "incq-pin", 50),    // the monitor
            tt(8, "incq", 60),        // born after the first snapshot: not compared
        ];
        assert_eq!(pick_workers(&before, &after, &[1], 2, 4), Some(vec![4, 3]));
        // one worker: thread 4 (30 ticks) is not twice as busy as thread 3 (20)
        assert_eq!(pick_workers(&before, &after, &[1], 1, 4), None);
        // a third worker would be thread 2, which was not busy enough
        assert_eq!(pick_workers(&before, &after, &[1], 3, 4), None);
        // with the caller not left out, thread 4 (30 ticks) is not twice as busy as the next
        assert_eq!(pick_workers(&before, &after, &[], 2, 4), None);
        assert_eq!(pick_workers(&before, &after, &[], 1, 4), Some(vec![1]));
        assert_eq!(
            pick_workers(&before, &after, &[1], 3, 2),
            Some(vec![4, 3, 2])
        );
        assert_eq!(pick_workers(&before, &after, &[1, 4], 2, 4), None);
        assert_eq!(pick_workers(&before, &after, &[1], 0, 4), None);
        assert_eq!(pick_workers(&[], &after, &[], 1, 0), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_is_pinned_and_given_its_mask_back() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty(), "the process's affinity mask");
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || {
            tx.send(current_tid()).unwrap();
            while !s2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let tid = rx.recv().unwrap();
        let allowed = || {
            let st = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
            st.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap()
                .trim()
                .to_string()
        };
        let whole = allowed();
        let last = *cpus.last().unwrap();
        assert!(set_affinity(tid, &[last]));
        assert_eq!(allowed(), last.to_string());
        assert!(set_affinity(tid, &cpus));
        assert_eq!(allowed(), whole);
        assert!(!set_affinity(tid, &[]), "an empty set");
        assert!(!set_affinity(tid, &[usize::MAX]), "a CPU past the set");
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
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
