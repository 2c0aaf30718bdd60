//! The `storefort` command line: config checks name the bad key.

use std::process::Command;

fn storefort() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_storefort"));
    // The test runner's own STOREFORT_* variables must not leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("STOREFORT_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn config_check_accepts_defaults_and_names_bad_keys() {
    let dir = tempfile::tempdir().expect("dir");
    let ok = storefort().current_dir(dir.path()).args(["config", "check"]).output().expect("run");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let file = dir.path().join("storefort.toml");
    std::fs::write(&file, "[store]\ncurrancy = \"EUR\"\n").expect("write");
    let bad = storefort().current_dir(dir.path()).args(["config", "check"]).output().expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("currancy"));

    std::fs::write(&file, "[store]\ncurrency = \"EURO\"\n").expect("write");
    let bad = storefort().current_dir(dir.path()).args(["config", "check"]).output().expect("run");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("store.currency"));

    std::fs::remove_file(&file).expect("rm");
    let bad = storefort()
        .current_dir(dir.path())
        .env("STOREFORT_STORE__ORDER_EXPIRY_MINUTES", "0")
        .args(["config", "check"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("store.order_expiry_minutes"));
    let bad = storefort()
        .current_dir(dir.path())
        .args(["config", "check", "--database-url", "mysql://x"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("database_url"));
}

/// Runs `storefort` with `stdin` fed in.
fn run_with_stdin(args: &[&str], dir: &std::path::Path, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = storefort()
        .current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write");
    child.wait_with_output().expect("run")
}

#[test]
fn admin_create_makes_the_owner_from_stdin_and_admin_token_prints_a_token_once() {
    let dir = tempfile::tempdir().expect("dir");
    let create = ["admin", "create", "--email", "owner@example.com", "--role", "owner", "--password-stdin"];
    // The password never comes as an argument.
    let no_stdin = run_with_stdin(&create[..6], dir.path(), "");
    assert!(!no_stdin.status.success());
    assert!(String::from_utf8_lossy(&no_stdin.stderr).contains("--password-stdin"));
    let weak = run_with_stdin(&create, dir.path(), "password1234\n");
    assert!(!weak.status.success());
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("too easy to guess"),
        "{}",
        String::from_utf8_lossy(&weak.stderr)
    );
    let ok = run_with_stdin(&create, dir.path(), "velvet-harbor-quartz-lantern\n");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let again = run_with_stdin(&create, dir.path(), "velvet-harbor-quartz-lantern\n");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has an account"));

    let token = ["admin", "token", "--email", "owner@example.com", "--scope", "read_orders", "--days", "7"];
    let out = run_with_stdin(&token, dir.path(), "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(printed.starts_with("sfa_") && printed.len() == 47, "{printed}");
    let bad =
        run_with_stdin(&["admin", "token", "--email", "owner@example.com", "--scope", "manage_staff"], dir.path(), "");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot be granted"));
    // Only the token's hash is stored.
    let db = std::fs::read(dir.path().join("storefort-data/storefort.db")).expect("db");
    let wal = std::fs::read(dir.path().join("storefort-data/storefort.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(printed.len()).any(|w| w == printed.as_bytes()), "the token is stored in plaintext");
    }
    let verify = storefort().current_dir(dir.path()).args(["ledger", "verify"]).output().expect("run");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}
