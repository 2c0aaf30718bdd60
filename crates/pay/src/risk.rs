//! Order risk scoring: every order gets allow, review or block, with the
//! reasons that led there.
//!
//! Each rule adds points; the sum picks the decision. One strong signal
//! (a total twenty times the usual, many failed payments) is enough for a
//! person to look; blocking needs several. The weights and limits are the
//! store's to tune, and every reason is shown to staff, so a decision is
//! never a black box. Pure: the store gathers the counts, this judges them.

use serde::{Deserialize, Serialize};

/// What happens to the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    /// Held: it may be paid, but it is not fulfilled until staff approve.
    Review,
    /// Refused: the order is cancelled and its stock released.
    Block,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Review => "review",
            Decision::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Decision::Allow, Decision::Review, Decision::Block].into_iter().find(|d| d.as_str() == s)
    }
}

/// One reason, with what it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum RiskReason {
    /// The total is at least `multiple` times the median of past orders.
    TotalFarAboveMedian { total: i64, median: i64, multiple: i64 },
    /// The total is above the 99th percentile of past orders.
    TotalAboveP99 { total: i64, p99: i64 },
    /// Many orders from one IP address in the window.
    ManyOrdersFromIp { count: u32, window_minutes: u32 },
    /// Many orders from one device in the window.
    ManyOrdersFromDevice { count: u32, window_minutes: u32 },
    /// Many payment attempts from one IP address in the window.
    ManyPaymentAttempts { count: u32, window_minutes: u32 },
    /// A new account placing a large order.
    NewAccountHighTotal { account_age_hours: i64, total: i64 },
    /// Many failed payments from this IP, device or account recently.
    ManyFailedPayments { count: u32, window_minutes: u32 },
    /// The email's domain hands out throwaway addresses.
    DisposableEmail { domain: String },
    /// The billing country is not where the request came from.
    CountryMismatch { billing: String, ip: String },
    /// The gateway reported an amount or currency other than the order's.
    AmountMismatch { expected: i64, reported: i64, currency: String },
}

impl RiskReason {
    /// The rule's stable name.
    pub fn rule(&self) -> &'static str {
        match self {
            RiskReason::TotalFarAboveMedian { .. } => "total_far_above_median",
            RiskReason::TotalAboveP99 { .. } => "total_above_p99",
            RiskReason::ManyOrdersFromIp { .. } => "many_orders_from_ip",
            RiskReason::ManyOrdersFromDevice { .. } => "many_orders_from_device",
            RiskReason::ManyPaymentAttempts { .. } => "many_payment_attempts",
            RiskReason::NewAccountHighTotal { .. } => "new_account_high_total",
            RiskReason::ManyFailedPayments { .. } => "many_failed_payments",
            RiskReason::DisposableEmail { .. } => "disposable_email",
            RiskReason::CountryMismatch { .. } => "country_mismatch",
            RiskReason::AmountMismatch { .. } => "amount_mismatch",
        }
    }
}

/// The store's limits and weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskPolicy {
    /// Past orders needed before totals are compared with them.
    pub min_history: usize,
    /// "Far above" means at least this many times the median.
    pub median_multiple: i64,
    /// The window for counting orders and attempts.
    pub window_minutes: u32,
    /// Orders from one IP address (or device) in the window before it counts.
    pub max_orders_per_ip: u32,
    /// Payment attempts from one IP address in the window before it counts.
    pub max_payment_attempts_per_ip: u32,
    /// Failed payments in the window before it counts.
    pub max_failed_payments: u32,
    /// Accounts younger than this are new.
    pub new_account_hours: i64,
    /// A new account's order is large at this many times the median (or,
    /// without history, at `new_account_amount` minor units).
    pub new_account_median_multiple: i64,
    pub new_account_amount: i64,
    /// Score at which an order is held for review.
    pub review_score: u32,
    /// Score at which an order is refused.
    pub block_score: u32,
    /// Extra throwaway-mail domains, beyond the shipped list.
    pub disposable_domains: Vec<String>,
    /// A MaxMind DB country (or city) file for the billing-country rule;
    /// empty: that rule does not run.
    pub geoip_database: String,
}

impl Default for RiskPolicy {
    fn default() -> Self {
        RiskPolicy {
            min_history: 20,
            median_multiple: 10,
            window_minutes: 60,
            max_orders_per_ip: 5,
            max_payment_attempts_per_ip: 10,
            max_failed_payments: 3,
            new_account_hours: 24,
            new_account_median_multiple: 3,
            new_account_amount: 50_000,
            review_score: 50,
            block_score: 100,
            disposable_domains: Vec::new(),
            geoip_database: String::new(),
        }
    }
}

impl RiskPolicy {
    /// Refuses settings that would make scoring meaningless.
    pub fn validate(&self) -> Result<(), String> {
        if self.review_score == 0 || self.block_score <= self.review_score {
            return Err("risk.block_score must be above risk.review_score, which must be above 0".into());
        }
        if self.median_multiple < 2 || self.new_account_median_multiple < 1 {
            return Err("risk.median_multiple must be at least 2".into());
        }
        if self.window_minutes == 0 || self.max_orders_per_ip == 0 || self.max_payment_attempts_per_ip == 0 {
            return Err("risk windows and counts must be above 0".into());
        }
        Ok(())
    }

    fn weight(&self, reason: &RiskReason) -> u32 {
        // Alone, any of the strong signals reaches review (50); block (100)
        // needs them to add up.
        match reason {
            RiskReason::TotalFarAboveMedian { .. } => 50,
            RiskReason::TotalAboveP99 { .. } => 30,
            RiskReason::ManyOrdersFromIp { .. } | RiskReason::ManyOrdersFromDevice { .. } => 40,
            RiskReason::ManyPaymentAttempts { .. } => 40,
            RiskReason::NewAccountHighTotal { .. } => 30,
            RiskReason::ManyFailedPayments { .. } => 50,
            RiskReason::DisposableEmail { .. } => 30,
            RiskReason::CountryMismatch { .. } => 20,
            RiskReason::AmountMismatch { .. } => self.review_score,
        }
    }
}

/// Past order totals in the order's currency, summarized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    pub count: usize,
    pub median: i64,
    pub p99: i64,
}

impl History {
    /// Summarizes totals (in any order).
    pub fn of(mut totals: Vec<i64>) -> History {
        if totals.is_empty() {
            return History::default();
        }
        totals.sort_unstable();
        let n = totals.len();
        // Nearest rank: the smallest value with at least q of the totals at
        // or below it.
        let at = |q_num: usize, q_den: usize| totals[(n * q_num).div_ceil(q_den).clamp(1, n) - 1];
        History { count: n, median: at(1, 2), p99: at(99, 100) }
    }
}

/// What the store knows about an order when it is placed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RiskInput {
    pub total: i64,
    pub history: History,
    /// Earlier orders from this IP address in the window (this one not counted).
    pub orders_from_ip: u32,
    pub orders_from_device: u32,
    /// Payment attempts from this IP address in the window.
    pub payment_attempts_from_ip: u32,
    /// Failed payments from this IP address, device or account in the window.
    pub failed_payments: u32,
    /// `None` for a guest.
    pub account_age_hours: Option<i64>,
    pub email_domain: String,
    pub billing_country: Option<String>,
    /// Only when a GeoIP database is configured.
    pub ip_country: Option<String>,
}

/// The judgement on one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskVerdict {
    pub decision: Decision,
    pub score: u32,
    pub reasons: Vec<RiskReason>,
}

impl RiskVerdict {
    /// Adds a reason found later (an amount mismatch at payment), raising the
    /// decision if the new score calls for it; a decision never goes down.
    pub fn add(&mut self, policy: &RiskPolicy, reason: RiskReason) {
        self.score = self.score.saturating_add(policy.weight(&reason));
        self.reasons.push(reason);
        self.decision = self.decision.max(policy.decide(self.score));
    }
}

/// The shipped list of throwaway-mail domains, one per line.
const DISPOSABLE_DOMAINS: &str = include_str!("disposable_domains.txt");

/// True when `domain` or a parent of it is a throwaway-mail domain.
pub fn is_disposable(domain: &str, extra: &[String]) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let listed = |d: &str| {
        DISPOSABLE_DOMAINS.lines().map(str::trim).any(|l| !l.is_empty() && !l.starts_with('#') && l == d)
            || extra.iter().any(|e| e.eq_ignore_ascii_case(d))
    };
    // example.mailinator.com is as throwaway as mailinator.com.
    let mut rest = domain.as_str();
    loop {
        if listed(rest) {
            return true;
        }
        match rest.split_once('.') {
            Some((_, parent)) if parent.contains('.') => rest = parent,
            _ => return false,
        }
    }
}

impl RiskPolicy {
    fn decide(&self, score: u32) -> Decision {
        if score >= self.block_score {
            Decision::Block
        } else if score >= self.review_score {
            Decision::Review
        } else {
            Decision::Allow
        }
    }

    /// Scores one order.
    pub fn assess(&self, input: &RiskInput) -> RiskVerdict {
        let mut reasons = Vec::new();
        let h = input.history;
        let compared = h.count >= self.min_history && h.median > 0;
        if compared && input.total >= h.median.saturating_mul(self.median_multiple) {
            reasons.push(RiskReason::TotalFarAboveMedian {
                total: input.total,
                median: h.median,
                multiple: input.total / h.median,
            });
        }
        if compared && input.total > h.p99 {
            reasons.push(RiskReason::TotalAboveP99 { total: input.total, p99: h.p99 });
        }
        let window_minutes = self.window_minutes;
        if input.orders_from_ip >= self.max_orders_per_ip {
            reasons.push(RiskReason::ManyOrdersFromIp { count: input.orders_from_ip, window_minutes });
        }
        if input.orders_from_device >= self.max_orders_per_ip {
            reasons.push(RiskReason::ManyOrdersFromDevice { count: input.orders_from_device, window_minutes });
        }
        if input.payment_attempts_from_ip >= self.max_payment_attempts_per_ip {
            reasons.push(RiskReason::ManyPaymentAttempts { count: input.payment_attempts_from_ip, window_minutes });
        }
        if let Some(age) = input.account_age_hours.filter(|a| *a < self.new_account_hours) {
            let large = if compared {
                input.total >= h.median.saturating_mul(self.new_account_median_multiple)
            } else {
                input.total >= self.new_account_amount
            };
            if large {
                reasons.push(RiskReason::NewAccountHighTotal { account_age_hours: age, total: input.total });
            }
        }
        if input.failed_payments >= self.max_failed_payments {
            reasons.push(RiskReason::ManyFailedPayments { count: input.failed_payments, window_minutes });
        }
        if is_disposable(&input.email_domain, &self.disposable_domains) {
            reasons.push(RiskReason::DisposableEmail { domain: input.email_domain.to_ascii_lowercase() });
        }
        if let (Some(billing), Some(ip)) = (&input.billing_country, &input.ip_country)
            && !billing.eq_ignore_ascii_case(ip)
        {
            reasons.push(RiskReason::CountryMismatch {
                billing: billing.to_ascii_uppercase(),
                ip: ip.to_ascii_uppercase(),
            });
        }
        let score = reasons.iter().map(|r| self.weight(r)).sum();
        RiskVerdict { decision: self.decide(score), score, reasons }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose 100 past orders cost 20.00 to 39.70.
    fn history() -> History {
        History::of((0..100).map(|i| 2_000 + i * 20).collect())
    }

    fn ordinary() -> RiskInput {
        RiskInput { total: 2_500, history: history(), email_domain: "example.com".into(), ..RiskInput::default() }
    }

    fn rules(v: &RiskVerdict) -> Vec<&'static str> {
        v.reasons.iter().map(RiskReason::rule).collect()
    }

    #[test]
    fn history_summaries() {
        let h = history();
        assert_eq!((h.count, h.median, h.p99), (100, 2_980, 3_960));
        assert_eq!(History::of(vec![5]), History { count: 1, median: 5, p99: 5 });
        assert_eq!(History::of(vec![]), History::default());
    }

    #[test]
    fn an_ordinary_order_is_allowed_with_no_reasons() {
        let v = RiskPolicy::default().assess(&ordinary());
        assert_eq!((v.decision, v.score, v.reasons.len()), (Decision::Allow, 0, 0));
    }

    #[test]
    fn twenty_times_the_median_goes_to_review_with_that_reason() {
        let v = RiskPolicy::default().assess(&RiskInput { total: 60_000, ..ordinary() });
        assert_eq!(v.decision, Decision::Review);
        assert_eq!(rules(&v), ["total_far_above_median", "total_above_p99"]);
        assert!(matches!(v.reasons[0], RiskReason::TotalFarAboveMedian { multiple: 20, median: 2_980, .. }));
    }

    #[test]
    fn above_p99_alone_is_noted_but_allowed() {
        let v = RiskPolicy::default().assess(&RiskInput { total: 4_000, ..ordinary() });
        assert_eq!((v.decision, rules(&v)), (Decision::Allow, vec!["total_above_p99"]));
    }

    #[test]
    fn totals_are_not_compared_with_too_short_a_history() {
        let short = History::of(vec![1_000; 5]);
        let v = RiskPolicy::default().assess(&RiskInput { total: 1_000_000, history: short, ..ordinary() });
        assert_eq!(v.decision, Decision::Allow);
    }

    #[test]
    fn many_orders_from_one_ip_or_device() {
        let v = RiskPolicy::default().assess(&RiskInput { orders_from_ip: 5, ..ordinary() });
        assert_eq!(rules(&v), ["many_orders_from_ip"]);
        assert_eq!(v.decision, Decision::Allow, "alone, 40 points stay under review");
        let v = RiskPolicy::default().assess(&RiskInput { orders_from_ip: 5, orders_from_device: 7, ..ordinary() });
        assert_eq!((v.decision, rules(&v)), (Decision::Review, vec!["many_orders_from_ip", "many_orders_from_device"]));
        assert_eq!(RiskPolicy::default().assess(&RiskInput { orders_from_ip: 4, ..ordinary() }).reasons, vec![]);
    }

    #[test]
    fn many_payment_attempts_from_one_ip() {
        let v = RiskPolicy::default().assess(&RiskInput { payment_attempts_from_ip: 12, ..ordinary() });
        assert_eq!(rules(&v), ["many_payment_attempts"]);
    }

    #[test]
    fn a_new_account_with_a_high_total() {
        let v = RiskPolicy::default().assess(&RiskInput { total: 9_000, account_age_hours: Some(2), ..ordinary() });
        assert_eq!((v.decision, rules(&v)), (Decision::Review, vec!["total_above_p99", "new_account_high_total"]));
        let old = RiskPolicy::default().assess(&RiskInput { total: 9_000, account_age_hours: Some(500), ..ordinary() });
        assert_eq!(rules(&old), ["total_above_p99"]);
        let no_history =
            RiskInput { total: 60_000, account_age_hours: Some(1), history: History::default(), ..ordinary() };
        assert_eq!(rules(&RiskPolicy::default().assess(&no_history)), ["new_account_high_total"]);
    }

    #[test]
    fn many_failed_payments_reach_review_alone() {
        let v = RiskPolicy::default().assess(&RiskInput { failed_payments: 3, ..ordinary() });
        assert_eq!((v.decision, rules(&v)), (Decision::Review, vec!["many_failed_payments"]));
    }

    #[test]
    fn disposable_email_domains_and_their_subdomains() {
        assert!(is_disposable("mailinator.com", &[]));
        assert!(is_disposable("Box.Mailinator.COM.", &[]));
        assert!(!is_disposable("gmail.com", &[]));
        assert!(!is_disposable("com", &[]));
        assert!(is_disposable("burner.test", &["burner.test".into()]));
        let v = RiskPolicy::default().assess(&RiskInput { email_domain: "yopmail.com".into(), ..ordinary() });
        assert_eq!(rules(&v), ["disposable_email"]);
    }

    #[test]
    fn billing_and_ip_countries_that_differ() {
        let input = RiskInput { billing_country: Some("DE".into()), ip_country: Some("ng".into()), ..ordinary() };
        let v = RiskPolicy::default().assess(&input);
        assert_eq!(v.reasons, vec![RiskReason::CountryMismatch { billing: "DE".into(), ip: "NG".into() }]);
        let same = RiskInput { billing_country: Some("de".into()), ip_country: Some("DE".into()), ..ordinary() };
        assert!(RiskPolicy::default().assess(&same).reasons.is_empty());
        let no_geoip = RiskInput { billing_country: Some("DE".into()), ..ordinary() };
        assert!(RiskPolicy::default().assess(&no_geoip).reasons.is_empty());
    }

    #[test]
    fn signals_add_up_to_a_block() {
        let input =
            RiskInput { total: 60_000, failed_payments: 4, email_domain: "guerrillamail.com".into(), ..ordinary() };
        let v = RiskPolicy::default().assess(&input);
        assert_eq!(v.decision, Decision::Block);
        assert_eq!(v.score, 50 + 30 + 50 + 30);
    }

    #[test]
    fn a_later_reason_raises_the_decision_and_never_lowers_it() {
        let policy = RiskPolicy::default();
        let mut v = policy.assess(&ordinary());
        v.add(&policy, RiskReason::AmountMismatch { expected: 2_500, reported: 100, currency: "EUR".into() });
        assert_eq!(v.decision, Decision::Review);
        assert_eq!(rules(&v), ["amount_mismatch"]);
    }

    #[test]
    fn policies_that_cannot_work_are_refused() {
        assert!(RiskPolicy::default().validate().is_ok());
        assert!(RiskPolicy { block_score: 50, ..RiskPolicy::default() }.validate().is_err());
        assert!(RiskPolicy { median_multiple: 1, ..RiskPolicy::default() }.validate().is_err());
    }
}
