//! `storefort ledger …` and `storefort receipt verify`: the ledger's offline
//! tools. They work while the store is stopped and change nothing.

use crate::config::Config;
use crate::keyfile;
use crate::serve::{LEDGER_MAC_PURPOSE, open_store};
use anyhow::{Context, Result, bail};
use std::io::IsTerminal;
use std::path::Path;
use storefort_ledger::{LedgerKey, Receipt, VerifierKey};
use storefort_web::ledger::{ORIGIN_SETTING, full_audit};

/// The store's ledger verifier key.
async fn verifier(cfg: &Config) -> Result<VerifierKey> {
    let key = keyfile::existing_server_key(&cfg.data_dir)?;
    let store = open_store(cfg, &key).await?;
    let origin = store.setting(ORIGIN_SETTING).await?;
    store.close().await;
    let origin = origin.context("this store has no ledger yet: start it once with `storefort serve`")?;
    let seed = keyfile::existing_ledger_seed(&cfg.data_dir)?;
    Ok(LedgerKey::from_seed(&origin, &seed).map_err(|e| anyhow::anyhow!("{e}"))?.verifier())
}

/// `storefort ledger key`: prints the public key receipts verify with.
pub async fn key(cfg: Config) -> Result<()> {
    cfg.settings()?;
    println!("{}", verifier(&cfg).await?);
    Ok(())
}

/// `storefort ledger verify`: the full check.
pub async fn verify(cfg: Config) -> Result<()> {
    cfg.settings()?;
    let server_key = keyfile::existing_server_key(&cfg.data_dir)?;
    let store = open_store(&cfg, &server_key).await?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("verifying {bar:40} {pos}/{len} entries ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |done: u64, total: u64| {
        if let Some(b) = &bar
            && (done.is_multiple_of(1000) || done == total)
        {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let mac_key = server_key.subkey(LEDGER_MAC_PURPOSE);
    let report = full_audit(&store, &mac_key, Some(&cfg.witness_dir()), &progress).await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    store.close().await;
    println!(
        "checked {} entries, {} checkpoints, {} witnessed checkpoints, {} orders, {} variants",
        report.entries, report.checkpoints, report.witnessed, report.orders, report.variants
    );
    match report.first_problem() {
        None => {
            println!("ledger OK: every entry, checkpoint and row verifies");
            Ok(())
        }
        Some(first) => {
            println!("LEDGER VERIFICATION FAILED: {} problem(s)", report.problems.len());
            println!("first bad: {first}");
            for p in report.problems.iter().take(20) {
                println!("  - {p}");
            }
            bail!("ledger verification failed at {first}")
        }
    }
}

/// `storefort receipt verify FILE --key KEY`: offline, no database.
pub fn verify_receipt(file: &Path, key: &str) -> Result<()> {
    let key_text = if Path::new(key).is_file() {
        std::fs::read_to_string(key).with_context(|| format!("cannot read {key}"))?
    } else {
        key.to_owned()
    };
    let key = VerifierKey::parse(&key_text).map_err(|e| anyhow::anyhow!("--key: {e}"))?;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let receipt: Receipt =
        serde_json::from_str(&text).with_context(|| format!("{} is not a receipt", file.display()))?;
    match receipt.verify(&key) {
        Ok(v) => {
            let number = receipt.order["number"].as_i64().unwrap_or_default();
            let total = receipt.order["total"].as_i64().unwrap_or_default();
            let currency = receipt.order["currency"].as_str().unwrap_or_default();
            println!("receipt OK: order {number}, total {total} {currency} (minor units)");
            println!("  ledger entry {} ({}) is in {} at tree size {}", v.leaf_index, v.kind, v.origin, v.tree_size);
            Ok(())
        }
        Err(e) => bail!("receipt INVALID: {e}"),
    }
}

/// `storefort ledger rotate-key`: a new signing key, handed over by the old
/// one in a `key_rotated` entry. Run it with the store stopped, or restart
/// the store afterwards so it signs with the new key.
pub async fn rotate_key(cfg: Config) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    cfg.settings()?;
    if std::env::var_os("STOREFORT_LEDGER_KEY").is_some() {
        bail!("the ledger key comes from STOREFORT_LEDGER_KEY: rotate it where that variable is managed");
    }
    let server_key = keyfile::existing_server_key(&cfg.data_dir)?;
    let old_seed = keyfile::existing_ledger_seed(&cfg.data_dir)?;
    let mut new_seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(new_seed.as_mut()).map_err(|e| anyhow::anyhow!("system random number generator failed: {e}"))?;
    // The new key is on disk before the ledger names it, so a crash cannot
    // leave a ledger pointing at a key nobody holds.
    let staged = cfg.data_dir.join("ledger.key.new");
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&staged).with_context(|| {
            format!("cannot create {} (a rotation already in progress? remove it and retry)", staged.display())
        })?;
    f.write_all(new_seed.as_ref())?;
    f.sync_all()?;
    let store = open_store(&cfg, &server_key).await?;
    let recorded = storefort_web::ledger::record_rotation(&store, &old_seed, &new_seed, crate::serve::now_ms()).await;
    store.close().await;
    let (old, new) = match recorded {
        Ok(keys) => keys,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e.into());
        }
    };
    // Replacing the file destroys the old private key; its public half
    // stays in the ledger, so everything it signed still verifies.
    std::fs::rename(&staged, cfg.data_dir.join("ledger.key")).context("cannot install the new ledger key")?;
    println!("rotated the ledger signing key");
    println!("  old: {old}");
    println!("  new: {new}");
    println!("restart the store to sign with the new key; receipts signed before still verify with the old key");
    Ok(())
}
