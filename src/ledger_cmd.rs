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
