//! The `[providers.NAME]` table for `type = "aws"`.

use serde::Deserialize;
use std::time::Duration;

/// How elevate reaches AWS. Holds no secrets: elevate's identity comes from the standard AWS
/// credential chain (or keys in elevate's secrets file), optionally exchanged for an assumed
/// role's short-lived keys, so a config file can be shared and reviewed freely.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// The bot's provider table carries `type = "aws"`; accepted and ignored here.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Region for STS and Identity Center, and the partition for IAM (`cn-…`, `us-gov-…`).
    pub region: String,
    /// One endpoint for every service (the moto emulator, a VPC endpoint proxy).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Per-service overrides, ahead of `endpoint`.
    #[serde(default)]
    pub iam_endpoint: Option<String>,
    #[serde(default)]
    pub sts_endpoint: Option<String>,
    #[serde(default)]
    pub identity_center_endpoint: Option<String>,
    /// When set, elevate calls `sts:AssumeRole` with its base identity's keys and acts as this
    /// role, refreshing its keys before they expire.
    #[serde(default)]
    pub assume_role_arn: Option<String>,
    #[serde(default)]
    pub assume_role_session_name: Option<String>,
    #[serde(default)]
    pub assume_role_external_id: Option<String>,
    /// Assumed-role session length, `15m` to `12h` (the role's own maximum applies); default `1h`.
    #[serde(default)]
    pub assume_role_duration: Option<String>,
    /// Per HTTP attempt; default `10s`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Attempts per AWS call for throttling, 429, 5xx and timeouts; default 4. After that the
    /// failure goes to the scheduler, which retries later with its own backoff.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// First backoff between attempts, doubled each time (with jitter); default `200ms`.
    #[serde(default)]
    pub retry_base: Option<String>,
    /// Longest `Retry-After` waited for inside a call; longer hints go to the scheduler. Default `5s`.
    #[serde(default)]
    pub max_retry_wait: Option<String>,
    /// Identity Center assignment status polling: interval (default `1s`) and give-up time
    /// (default `60s`, then transient: the next attempt finds the finished assignment).
    #[serde(default)]
    pub poll_interval: Option<String>,
    #[serde(default)]
    pub poll_timeout: Option<String>,
}

/// Settings after parsing, with defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub iam: Endpoint,
    pub sts: Endpoint,
    pub sso: Endpoint,
    pub assume_role: Option<AssumeRoleSettings>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub max_retry_wait: Duration,
    pub poll_interval: Duration,
    pub poll_timeout: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct AssumeRoleSettings {
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    pub duration: Duration,
}

/// Where to send one service's calls and how to sign them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Endpoint {
    pub url: String,
    pub signing_region: String,
    pub signing_name: &'static str,
}

impl AwsConfig {
    pub(crate) fn settings(&self) -> Result<Settings, String> {
        let region = self.region.trim().to_string();
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(format!("aws provider: `{}` is not a region (like us-east-1)", self.region));
        }
        let (iam_default, iam_region, dns_suffix) = partition_iam(&region);
        let pick = |specific: &Option<String>, default: String| -> Result<String, String> {
            let url = specific.clone().or_else(|| self.endpoint.clone()).unwrap_or(default);
            let url = url.trim_end_matches('/').to_string();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!(
                    "aws provider: endpoint `{url}` must start with https:// (or http:// for an emulator)"
                ));
            }
            Ok(url)
        };
        let overridden = self.endpoint.is_some();
        let iam = Endpoint {
            url: pick(&self.iam_endpoint, iam_default)?,
            // A single emulator endpoint is signed for the configured region; real IAM is
            // signed for its partition's home region.
            signing_region: if overridden && self.iam_endpoint.is_none() { region.clone() } else { iam_region },
            signing_name: "iam",
        };
        let sts = Endpoint {
            url: pick(&self.sts_endpoint, format!("https://sts.{region}.{dns_suffix}"))?,
            signing_region: region.clone(),
            signing_name: "sts",
        };
        let sso = Endpoint {
            url: pick(&self.identity_center_endpoint, format!("https://sso.{region}.{dns_suffix}"))?,
            signing_region: region.clone(),
            signing_name: "sso",
        };
        let assume_role = match &self.assume_role_arn {
            None => None,
            Some(arn) => {
                if !(arn.starts_with("arn:") && arn.contains(":role/")) {
                    return Err(format!(
                        "aws provider: assume_role_arn `{arn}` is not a role ARN (arn:aws:iam::123456789012:role/NAME)"
                    ));
                }
                let duration = dur(&self.assume_role_duration, "assume_role_duration", Duration::from_secs(3600))?;
                if !(900..=43_200).contains(&duration.as_secs()) {
                    return Err("aws provider: assume_role_duration must be between 15m and 12h".into());
                }
                Some(AssumeRoleSettings {
                    role_arn: arn.clone(),
                    session_name: self.assume_role_session_name.clone().unwrap_or_else(|| "elevate".into()),
                    external_id: self.assume_role_external_id.clone(),
                    duration,
                })
            }
        };
        let max_attempts = self.max_attempts.unwrap_or(4);
        if max_attempts == 0 {
            return Err("aws provider: max_attempts must be at least 1".into());
        }
        Ok(Settings {
            iam,
            sts,
            sso,
            assume_role,
            timeout: dur(&self.timeout, "timeout", Duration::from_secs(10))?,
            max_attempts,
            retry_base: dur(&self.retry_base, "retry_base", Duration::from_millis(200))?,
            max_retry_wait: dur(&self.max_retry_wait, "max_retry_wait", Duration::from_secs(5))?,
            poll_interval: dur(&self.poll_interval, "poll_interval", Duration::from_secs(1))?,
            poll_timeout: dur(&self.poll_timeout, "poll_timeout", Duration::from_secs(60))?,
        })
    }
}

/// IAM is global per partition: its endpoint, the region it is signed for, and the partition's
/// DNS suffix for the regional services.
fn partition_iam(region: &str) -> (String, String, &'static str) {
    if region.starts_with("cn-") {
        ("https://iam.cn-north-1.amazonaws.com.cn".into(), "cn-north-1".into(), "amazonaws.com.cn")
    } else if region.starts_with("us-gov-") {
        ("https://iam.us-gov.amazonaws.com".into(), "us-gov-west-1".into(), "amazonaws.com")
    } else {
        ("https://iam.amazonaws.com".into(), "us-east-1".into(), "amazonaws.com")
    }
}

/// `250ms`, `10s`, `2m`, `1h`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration (like 250ms, 10s, 2m)"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("`{s}` is not a duration (like 250ms, 10s, 2m)")),
    };
    Ok(Duration::from_millis(ms))
}

fn dur(v: &Option<String>, field: &str, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).map_err(|e| format!("aws provider: {field}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(region: &str) -> AwsConfig {
        AwsConfig { region: region.into(), ..AwsConfig::default() }
    }

    #[test]
    fn partitions_pick_their_iam_endpoint() {
        let s = cfg("cn-northwest-1").settings().unwrap();
        assert_eq!(s.iam.url, "https://iam.cn-north-1.amazonaws.com.cn");
        assert_eq!(s.iam.signing_region, "cn-north-1");
        assert_eq!(s.sts.url, "https://sts.cn-northwest-1.amazonaws.com.cn");
        let s = cfg("us-gov-east-1").settings().unwrap();
        assert_eq!(s.iam.url, "https://iam.us-gov.amazonaws.com");
        let s = cfg("eu-west-1").settings().unwrap();
        assert_eq!((s.iam.url.as_str(), s.iam.signing_region.as_str()), ("https://iam.amazonaws.com", "us-east-1"));
        assert_eq!(s.sso.url, "https://sso.eu-west-1.amazonaws.com");
    }

    #[test]
    fn one_endpoint_overrides_all_services() {
        let mut c = cfg("eu-west-1");
        c.endpoint = Some("http://127.0.0.1:5000/".into());
        let s = c.settings().unwrap();
        for e in [&s.iam, &s.sts, &s.sso] {
            assert_eq!(e.url, "http://127.0.0.1:5000");
            assert_eq!(e.signing_region, "eu-west-1");
        }
    }

    #[test]
    fn the_provider_table_deserializes_and_refuses_typos() {
        let c: AwsConfig = toml::from_str(
            "type = \"aws\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:5000\"\nassume_role_arn = \"arn:aws:iam::123456789012:role/elevate\"\ntimeout = \"10s\"\n",
        )
        .unwrap();
        let s = c.settings().unwrap();
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.assume_role.unwrap().role_arn, "arn:aws:iam::123456789012:role/elevate");
        let err = toml::from_str::<AwsConfig>("region = \"us-east-1\"\nregoin = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("regoin"), "{err}");
        assert!(cfg("US East").settings().is_err());
        let mut c = cfg("us-east-1");
        c.timeout = Some("10 parsecs".into());
        assert!(c.settings().unwrap_err().contains("timeout"));
    }
}
