//! Ledger benchmark: `ledger verify` over 1,000,000 entries, checkpointing
//! them, and the size of an inclusion proof at that size.
//!
//! Run: `cargo bench --bench ledger` (STOREFORT_BENCH_LEDGER_ENTRIES changes
//! the count). Setup is not timed; the timed parts are printed with the
//! command's own wall-clock measurement.

use serde_json::json;
use std::time::Instant;
use storefort_ledger::tree::{from_map, inclusion_proof, needed};
use storefort_store::{NewProduct, NewVariant, Store, StoreOptions};
use storefort_web::ledger::{full_audit, open_signer};

const MAC_KEY: [u8; 32] = [7; 32];

fn main() {
    let entries: u64 =
        std::env::var("STOREFORT_BENCH_LEDGER_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        // STOREFORT_BENCH_LEDGER_DIR keeps the generated log for reruns.
        let temp = tempfile::tempdir().expect("dir");
        let kept = std::env::var("STOREFORT_BENCH_LEDGER_DIR").ok().map(std::path::PathBuf::from);
        let path = kept.clone().unwrap_or_else(|| temp.path().to_owned());
        std::fs::create_dir_all(&path).expect("dir");
        let url = format!("sqlite://{}?mode=rwc", path.join("ledger.db").display());
        let store =
            Store::open(&StoreOptions { url, max_connections: 4, ledger_mac_key: MAC_KEY, record_ledger: true })
                .await
                .expect("open");
        let signer = open_signer(&store, &[5; 32], Some("bench.storefort/ledger"), Some(path.join("witness")), 0)
            .await
            .expect("signer");

        let reuse = store.ledger_size().await.expect("size") >= entries.saturating_sub(1);
        let setup = Instant::now();
        if !reuse {
            let variant = uuid::Uuid::now_v7().to_string();
            let mut tx = store.begin_write(1, "system", None).await.expect("tx");
            tx.insert_product(&NewProduct {
                id: uuid::Uuid::now_v7().to_string(),
                handle: "bench".into(),
                title: "Bench".into(),
                description: "Bench".into(),
                collections: vec![],
                variants: vec![NewVariant {
                    id: variant.clone(),
                    sku: "BENCH-1".into(),
                    title: "Default".into(),
                    price_amount: 100,
                    currency: "EUR".into(),
                    stock: 0,
                }],
            })
            .await
            .expect("product");
            tx.commit(event()).await.expect("commit");
            // Entries in transactions of 10,000: each batch is 9,999 token
            // issuances (no row to check) and one stock count through the real
            // path, which updates the variant row the audit compares.
            let mut written = 0u64;
            let mut stock = 0i64;
            let target = entries.saturating_sub(3);
            while written < target {
                let mut tx = store.begin_write(2, "bootstrap_admin", None).await.expect("tx");
                let batch = (target - written).min(10_000);
                for _ in 1..batch {
                    tx.append("admin_token_issued", vec!["bootstrap_admin_token".into()], json!({"rotated": true}))
                        .await
                        .expect("append");
                }
                stock += 1;
                tx.set_available(&variant, stock).await.expect("set");
                tx.commit(event()).await.expect("commit");
                written += batch;
                if written % 100_000 < 10_000 {
                    eprintln!("  {written} entries");
                }
            }
        }
        let size = store.ledger_size().await.expect("size");
        eprintln!("setup: {size} entries in {:.1} s", setup.elapsed().as_secs_f64());

        let t = Instant::now();
        signer.checkpoint_now(&store, 3).await.expect("checkpoint");
        let checkpoint_s = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let report = full_audit(&store, &MAC_KEY, Some(&path.join("witness")), &|_, _| {}).await.expect("audit");
        let verify_s = t.elapsed().as_secs_f64();
        assert!(report.problems.is_empty(), "{:?}", report.problems.first());

        let leaf = size / 2;
        let wanted = needed(|get| {
            inclusion_proof(leaf, size, get);
        });
        let t = Instant::now();
        let nodes = store.ledger_nodes(&wanted).await.expect("nodes");
        let proof = inclusion_proof(leaf, size, &mut from_map(&nodes));
        let proof_ms = t.elapsed().as_secs_f64() * 1000.0;
        let proof_json =
            serde_json::to_string(&proof.iter().map(storefort_ledger::hash::to_b64).collect::<Vec<_>>()).expect("json");

        println!();
        println!("| measure | value |");
        println!("|---|---:|");
        println!("| entries | {size} |");
        println!("| first checkpoint over all entries (nodes + signature) | {checkpoint_s:.2} s |");
        println!("| `ledger verify` (full audit: entries, MACs, tree, checkpoint, witness, rows) | {verify_s:.2} s |");
        println!(
            "| inclusion proof at this size | {} hashes, {} bytes raw, {} bytes as JSON |",
            proof.len(),
            proof.len() * 32,
            proof_json.len()
        );
        println!("| building one proof from the database | {proof_ms:.2} ms |");
        store.close().await;
    });
}

fn event() -> storefort_core::SecurityEvent {
    storefort_core::SecurityEvent::new(storefort_core::EventKind::StockChanged, storefort_core::Actor::System)
}
