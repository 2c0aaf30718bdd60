//! `storefort keys rotate`: a new master key, every data key re-wrapped.

use crate::config::Config;
use crate::serve;
use anyhow::Result;

pub async fn rotate(cfg: Config) -> Result<()> {
    cfg.settings()?;
    let vault = serve::open_vault(&cfg).await?;
    let source = cfg.master_key_source();
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} re-wrapping data keys: {pos} done {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let rotation = storefort_web::vault::rotate_file_key(&vault, &source, |done, batch| {
        bar.set_position(done);
        bar.set_message(format!("(last batch {batch})"));
    })
    .await
    .map_err(|e| anyhow::anyhow!("rotation stopped: {e}. Run `storefort keys rotate` again to finish it."))?;
    bar.finish_and_clear();
    vault.key_store().close().await;
    println!(
        "master key rotated: {} -> {}; {} data keys re-wrapped; the old key file is deleted",
        rotation.old_id, rotation.new_id, rotation.rewrapped
    );
    println!("back up the new master key (offline, apart from the database and the key store)");
    Ok(())
}
