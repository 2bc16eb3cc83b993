//! The `incq` binary end to end: adapter listing, the one-line error without a Vulkan driver,
//! flag errors, and a smoke run of the bench path (correctness of the output, not speed).

mod common;
use std::process::Command;

fn incq() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_incq"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

#[test]
fn no_vulkan_driver_gives_one_clear_line_and_nonzero_exit() {
    for args in [&["info"][..], &["bench", "roofline", "--quick"][..]] {
        let out = incq()
            .args(args)
            .env("VK_ICD_FILENAMES", "/nonexistent")
            .env("VK_DRIVER_FILES", "/nonexistent")
            .env("WGPU_BACKEND", "vulkan")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded without a driver");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: expected one line, got: {stderr}");
        assert!(
            lines[0].contains("mesa-vulkan-drivers"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn bad_backend_flag_is_named() {
    let out = incq()
        .args(["--backend", "glide", "info"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--backend") && stderr.contains("glide"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn bad_keep_warm_flag_is_named() {
    let out = incq()
        .args(["--keep-warm", "sometimes", "info"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--keep-warm") && stderr.contains("sometimes"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn bad_variant_flag_is_named() {
    if common::gpu().is_none() {
        return;
    }
    let out = incq()
        .args(["bench", "gemm", "--quick", "--variant", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--variant") && stderr.contains("nope"),
        "{stderr}"
    );
}

#[test]
fn info_lists_and_marks_the_chosen_adapter() {
    let Some(g) = common::gpu() else { return };
    let out = incq().arg("info").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let chosen: Vec<&str> = stdout.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(chosen.len(), 1, "{stdout}");
    assert!(chosen[0].contains(&g.info.name), "{stdout}");
    assert!(
        stdout.contains("max_storage_buffer_binding_size"),
        "{stdout}"
    );
}

#[test]
fn bench_quick_json_rows_are_complete() {
    if common::gpu().is_none() {
        return;
    }
    let out = incq()
        .args(["bench", "gemm", "--quick", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows
        .iter()
        .any(|r| r["bench"] == "roofline" && r["unit"] == "GFLOP/s"));
    assert!(rows
        .iter()
        .any(|r| r["bench"] == "roofline" && r["unit"] == "GB/s"));
    let gemm: Vec<&serde_json::Value> = rows.iter().filter(|r| r["bench"] == "gemm").collect();
    assert_eq!(gemm.len(), 2, "{stdout}");
    for r in gemm {
        assert!(r["value"].as_f64().unwrap() > 0.0);
        assert!(r["pct_of_peak"].as_f64().unwrap() > 0.0);
        assert!(r["min_ms"].as_f64().unwrap() <= r["median_ms"].as_f64().unwrap());
        assert!(r["median_ms"].as_f64().unwrap() <= r["max_ms"].as_f64().unwrap());
    }
}

#[test]
fn profile_accounts_for_the_step_and_writes_a_chrome_trace() {
    if common::gpu().is_none() {
        return;
    }
    let trace = std::env::temp_dir().join(format!("incq-trace-{}.json", std::process::id()));
    let out = incq()
        .args([
            "profile", "--model", "lenet-bn", "--steps", "1", "--batch", "8", "--trace",
        ])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("conv") && stdout.contains("% of the step"),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let events = v["traceEvents"].as_array().unwrap();
    assert!(events.len() > 20);
    let mut end = 0.0;
    for e in events {
        assert_eq!(e["ph"], "X");
        assert!(e["name"].as_str().unwrap().contains("::"));
        let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
        assert!(dur >= 0.0 && ts >= end - 1e-6, "events are sequential");
        end = ts + dur;
    }
}

#[test]
fn bench_workload_lines_use_the_peer_format() {
    if common::gpu().is_none() {
        return;
    }
    for args in [
        &["bench", "train", "--workload", "W1", "--quick"][..],
        &["bench", "conv", "--quick"][..],
    ] {
        let out = incq().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("incq wgpu W"))
            .collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        for l in lines {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 8, "{l}");
            assert!(f[4].parse::<f64>().unwrap() > 0.0);
            assert!(
                f[5].starts_with("runs=") && f[6].starts_with("min=") && f[7].starts_with("max=")
            );
        }
    }
}
