//! Fault and throttle injection: rules that make the next matching requests fail or slow down,
//! the way the ION API gateway and LN misbehave in production (429 quota, 503 maintenance, 500
//! application errors, slow responses).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

/// The entity-set name that selects the token endpoint in [`FaultRule::entity_set`].
pub const TOKEN_TARGET: &str = "$token";

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FaultAction {
    /// 429 or 503 with `Retry-After: retryAfterSecs`.
    #[serde(rename_all = "camelCase")]
    Throttle { status: u16, retry_after_secs: u64 },
    /// An OData error with the given status (500 by default).
    #[serde(rename_all = "camelCase")]
    Error {
        #[serde(default = "default_error_status")]
        status: u16,
        #[serde(default)]
        message: Option<String>,
    },
    /// Wait `ms` milliseconds, then handle the request normally.
    Delay { ms: u64 },
}

fn default_error_status() -> u16 {
    500
}

/// A fault rule. Unset matchers match anything; `entitySet` `"$token"` selects the token endpoint,
/// which an unset `entitySet` does not (so throttling data calls never blocks authentication).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// HTTP method, e.g. `GET` (case-insensitive).
    #[serde(default)]
    pub method: Option<String>,
    /// Entity set name, e.g. `Contacts`, or `$token`.
    #[serde(default)]
    pub entity_set: Option<String>,
    /// LN company (header `X-Infor-LnCompany`).
    #[serde(default)]
    pub company: Option<String>,
    /// How many matching requests to affect; unset = until cleared.
    #[serde(default)]
    pub times: Option<u32>,
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule for any data request.
    pub fn new(action: FaultAction) -> Self {
        Self {
            method: None,
            entity_set: None,
            company: None,
            times: None,
            action,
        }
    }

    /// 429 with `Retry-After`.
    pub fn throttle(retry_after_secs: u64) -> Self {
        Self::new(FaultAction::Throttle {
            status: 429,
            retry_after_secs,
        })
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(retry_after_secs: u64) -> Self {
        Self::new(FaultAction::Throttle {
            status: 503,
            retry_after_secs,
        })
    }

    /// 500 OData error.
    pub fn server_error() -> Self {
        Self::new(FaultAction::Error {
            status: 500,
            message: None,
        })
    }

    /// Slow response.
    pub fn delay(ms: u64) -> Self {
        Self::new(FaultAction::Delay { ms })
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    pub fn entity_set(mut self, set: &str) -> Self {
        self.entity_set = Some(set.to_string());
        self
    }

    pub fn company(mut self, company: &str) -> Self {
        self.company = Some(company.to_string());
        self
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, request: &FaultTarget<'_>) -> bool {
        let set_ok = match (self.entity_set.as_deref(), request.entity_set) {
            (Some(TOKEN_TARGET), _) => request.is_token,
            (_, _) if request.is_token => false,
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        };
        set_ok
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(request.method))
            && self
                .company
                .as_deref()
                .is_none_or(|c| request.company == Some(c))
    }
}

/// What the fault engine needs to know about a request.
#[derive(Debug, Clone, Copy)]
pub struct FaultTarget<'a> {
    pub method: &'a str,
    pub entity_set: Option<&'a str>,
    pub company: Option<&'a str>,
    pub is_token: bool,
}

/// The active rules, in the order added; the first matching rule applies to a request.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<(u64, FaultRule)>>>,
    next_id: Arc<Mutex<u64>>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Vec<(u64, FaultRule)>> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Add a rule; returns its id.
    pub fn add(&self, rule: FaultRule) -> u64 {
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(PoisonError::into_inner);
            *next += 1;
            *next
        };
        self.lock().push((id, rule));
        id
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn list(&self) -> Vec<(u64, FaultRule)> {
        self.lock().clone()
    }

    /// Find the first matching rule and consume one use of it.
    pub fn take(&self, target: &FaultTarget<'_>) -> Option<FaultAction> {
        let mut rules = self.lock();
        let index = rules.iter().position(|(_, r)| r.matches(target))?;
        let action = rules[index].1.action.clone();
        if let Some(times) = &mut rules[index].1.times {
            *times = times.saturating_sub(1);
            if *times == 0 {
                rules.remove(index);
            }
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(method: &'a str, set: Option<&'a str>, is_token: bool) -> FaultTarget<'a> {
        FaultTarget {
            method,
            entity_set: set,
            company: Some("100"),
            is_token,
        }
    }

    #[test]
    fn rules_are_consumed_and_matched() {
        let faults = Faults::default();
        faults.add(
            FaultRule::throttle(2)
                .entity_set("Contacts")
                .method("get")
                .times(2),
        );
        assert!(
            faults
                .take(&target("GET", Some("Activities"), false))
                .is_none()
        );
        assert!(
            faults
                .take(&target("POST", Some("Contacts"), false))
                .is_none()
        );
        assert!(
            faults
                .take(&target("GET", Some("Contacts"), false))
                .is_some()
        );
        assert!(
            faults
                .take(&target("GET", Some("Contacts"), false))
                .is_some()
        );
        assert!(
            faults
                .take(&target("GET", Some("Contacts"), false))
                .is_none()
        );
    }

    #[test]
    fn token_endpoint_only_matched_explicitly() {
        let faults = Faults::default();
        faults.add(FaultRule::server_error());
        assert!(faults.take(&target("POST", None, true)).is_none());
        assert!(
            faults
                .take(&target("GET", Some("Contacts"), false))
                .is_some()
        );
        faults.clear();
        faults.add(FaultRule::server_error().entity_set(TOKEN_TARGET).times(1));
        assert!(
            faults
                .take(&target("GET", Some("Contacts"), false))
                .is_none()
        );
        assert!(faults.take(&target("POST", None, true)).is_some());
        assert!(faults.list().is_empty());
    }

    #[test]
    fn rule_json_shape() {
        let rule: Result<FaultRule, _> = serde_json::from_str(
            r#"{"method":"GET","entitySet":"Contacts","times":1,"action":{"type":"throttle","status":429,"retryAfterSecs":3}}"#,
        );
        assert_eq!(
            rule.ok(),
            Some(
                FaultRule::throttle(3)
                    .method("GET")
                    .entity_set("Contacts")
                    .times(1)
            )
        );
    }
}
