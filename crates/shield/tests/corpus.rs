//! The detectors against the OWASP CRS regression corpus shipped beside
//! the project (`../shared/corpus`). Families are added here as their
//! detectors arrive; each must stay at or above the target (90% of the
//! paranoia-1 attack stages).

use storefort_shield::eval::replay;
use storefort_shield::score::DEFAULT_THRESHOLD;

fn corpus() -> String {
    let path = std::env::var("STOREFORT_CORPUS")
        .unwrap_or_else(|_| format!("{}/../../../shared/corpus/crs-regression.jsonl", env!("CARGO_MANIFEST_DIR")));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("the CRS corpus at {path}: {e} (set STOREFORT_CORPUS)"))
}

#[test]
fn paranoia_one_meets_the_targets_in_every_family_of_the_issue() {
    let report = replay(&corpus(), 1, DEFAULT_THRESHOLD).expect("replay");
    for family in [930, 931, 932, 933, 934, 941, 942, 944] {
        let t = report.families[&family];
        let rate = f64::from(t.attacks_blocked) / f64::from(t.attacks);
        assert!(
            rate >= 0.90,
            "family {family}: {} of {} attack stages detected\n{}",
            t.attacks_blocked,
            t.attacks,
            report.table()
        );
    }
    let (passed, total) = report.global_benign;
    assert_eq!(total, 35, "the corpus has 35 scope-all stages");
    assert_eq!(passed, total, "real requests blocked: {:?}", report.global_benign_blocked);
}
