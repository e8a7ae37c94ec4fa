//! `warmline check-config FILE`: loads a config exactly as `serve` would (environment secrets
//! included), validates it, and prints the effective configuration, every default filled in and
//! every secret masked, so it can be pasted into a ticket.

use crate::config::Config;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: [&str; 7] = [
    "auth_token",
    "password",
    "secret",
    "client_secret",
    "api_key",
    "jwt",
    "value",
];

/// Arguments of `check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The TOML file to check.
    pub file: PathBuf,
}

/// Replaces every non-empty secret by `***` (an empty one stays empty: that is worth seeing).
pub fn mask(v: &mut toml::Value) {
    if let toml::Value::Table(t) = v {
        for (k, x) in t.iter_mut() {
            match x {
                toml::Value::String(s) if SECRET_KEYS.contains(&k.as_str()) && !s.is_empty() => {
                    *s = "***".into();
                }
                _ => mask(x),
            }
        }
    } else if let toml::Value::Array(a) = v {
        a.iter_mut().for_each(mask);
    }
}

/// The effective configuration as TOML, secrets masked.
pub fn render(cfg: &Config) -> Result<String, String> {
    let mut v = toml::Value::try_from(cfg).map_err(|e| e.to_string())?;
    mask(&mut v);
    toml::to_string(&v).map_err(|e| e.to_string())
}

/// Runs the command: 0 and the effective config when valid, 1 and the reason when not.
pub fn run(args: &CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let cfg = match super::load_config(Some(args.file.as_path())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid: {e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Err(e) = super::pipeline_settings(&cfg) {
        eprintln!("invalid: {e:#}");
        return Ok(ExitCode::from(1));
    }
    let mut resolved = cfg.bridge.clone();
    match resolved.resolve_modes(cfg.server.public_url.as_deref(), cfg.cluster.is_some()) {
        Ok(warnings) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
        }
        Err(e) => {
            eprintln!("invalid: {e}");
            return Ok(ExitCode::from(1));
        }
    }
    print!("{}", render(&cfg).map_err(anyhow::Error::msg)?);
    eprintln!("ok: {}", args.file.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_defaults_shown() {
        let cfg = Config::from_toml(
            r#"
            [auth.token]
            value = "hunter2"
            [bridge.webhook]
            url = "https://crm.example/h"
            secret = "s3cret"
            [bridge.twilio]
            account_sid = "AC1"
            auth_token = "tok"
            agent = "+1555"
            caller_id = "+1666"
            "#,
        )
        .unwrap();
        let out = render(&cfg).unwrap();
        for secret in ["hunter2", "s3cret", "\"tok\""] {
            assert!(!out.contains(secret), "{secret} leaked:\n{out}");
        }
        assert!(out.contains("account_sid = \"AC1\""), "{out}");
        assert!(out.contains("mode = \"auto\""), "{out}");
        assert!(out.contains("answer_timeout_s = 30"), "{out}");
        assert!(out.contains("max_calls = 2000"), "{out}");
        // What is printed is itself a valid config equal to the input, secrets aside.
        let back = Config::from_toml(&out).unwrap();
        assert_eq!(back.bridge.twilio.unwrap().agent, "+1555");
    }
}
