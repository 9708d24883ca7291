//! `${VAR}` expansion of the paths of the file (e.g.
//! `${CREDENTIALS_DIRECTORY}/client-secret` under systemd's
//! `LoadCredential=`).
//!
//! Pure: the environment is a lookup function. Invariant: a variable that
//! is unset or empty is an error naming it, never an empty expansion.

/// Expands `${VAR}` (e.g. `${CREDENTIALS_DIRECTORY}`) from the environment.
pub(super) fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("'{text}' has an unclosed '${{'"));
        };
        let name = &after[..end];
        match env(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(format!(
                    "'{text}' uses ${{{name}}}, which is not set (systemd sets CREDENTIALS_DIRECTORY for LoadCredential=)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_directory_is_expanded() {
        let e = expand("${CREDENTIALS_DIRECTORY}/client-secret", &|k| {
            (k == "CREDENTIALS_DIRECTORY").then(|| "/run/credentials/apptoken.service".into())
        });
        assert_eq!(
            e.unwrap(),
            "/run/credentials/apptoken.service/client-secret"
        );
        assert!(expand("${CREDENTIALS_DIRECTORY}/x", &|_| None).is_err());
    }
}
