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
