//! A mistyped kernels variable stops `prunebench` before it does anything, with one line naming
//! the variable, the value and the accepted values.

use std::process::Command;

fn prunebench(var: &str, value: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_prunebench"))
        .env_remove("PRUNEBENCH_KERNELS")
        .env_remove("PRUNEBENCH_ISA")
        .env(var, value)
        .arg("--version")
        .output()
        .expect("prunebench runs")
}

#[test]
fn a_mistyped_backend_is_refused_with_exit_status_2() {
    let out = prunebench("PRUNEBENCH_KERNELS", "ourz");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "prunebench: PRUNEBENCH_KERNELS=\"ourz\" is not a known value (expected one of: candle, ours)\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_mistyped_isa_is_refused_with_exit_status_2() {
    let out = prunebench("PRUNEBENCH_ISA", "avx3");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("prunebench: PRUNEBENCH_ISA=\"avx3\" is not a known value"),
        "{stderr}"
    );
}

#[test]
fn known_values_pass() {
    for (var, value) in [
        ("PRUNEBENCH_KERNELS", "candle"),
        ("PRUNEBENCH_KERNELS", "ours"),
        ("PRUNEBENCH_ISA", "portable"),
    ] {
        let out = prunebench(var, value);
        assert!(out.status.success(), "{var}={value}: {out:?}");
    }
}
