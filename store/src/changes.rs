//! Dockerfile instructions allowed by `commit -c` and `import -c`
//! (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR),
//! applied to a runtime config (the `config` object of an image config).

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// Apply each change, in order, to `config` (a JSON object).
pub fn apply_changes(config: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    for c in changes {
        apply_one(config, c)?;
    }
    Ok(())
}

/// An EXPOSE port (`80`, `80/udp`, a range `8000-8010/tcp`) as the
/// `PORT/PROTO` keys it stands for, checked and expanded as Docker does.
fn port_spec(spec: &str) -> Result<Vec<String>> {
    let (port, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let lower = proto.to_ascii_lowercase();
    if !matches!(lower.as_str(), "tcp" | "udp" | "sctp") {
        return Err(Error::Invalid(format!("Invalid proto: {proto}")));
    }
    let number = |s: &str| {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u32>().ok().filter(|&n| n <= 65535)
    };
    let range = match port.split_once('-') {
        Some((lo, hi)) => number(lo).zip(number(hi)).filter(|(l, h)| l <= h),
        None => number(port).map(|n| (n, n)),
    };
    let (lo, hi) = range.ok_or_else(|| Error::Invalid(format!("Invalid containerPort: {port}")))?;
    Ok((lo..=hi).map(|n| format!("{n}/{lower}")).collect())
}

fn apply_one(config: &mut Map<String, Value>, change: &str) -> Result<()> {
    let change = change.trim();
    let (instr, rest) = change.split_once(char::is_whitespace).unwrap_or((change, ""));
    let rest = rest.trim();
    let lower = instr.to_ascii_lowercase();
    match lower.as_str() {
        "cmd" => {
            config.insert("Cmd".into(), json!(exec_or_shell(rest)));
        }
        "entrypoint" => {
            config.insert("Entrypoint".into(), json!(exec_or_shell(rest)));
        }
        "env" => {
            let pairs = key_values(rest, "ENV")?;
            let env = config.entry("Env").or_insert(json!([]));
            if !env.is_array() {
                *env = json!([]);
            }
            let list = env.as_array_mut().unwrap();
            for (k, v) in pairs {
                let item = format!("{k}={v}");
                match list
                    .iter()
                    .position(|e| e.as_str().and_then(|s| s.split_once('=')).map(|p| p.0) == Some(k.as_str()))
                {
                    Some(i) => list[i] = json!(item),
                    None => list.push(json!(item)),
                }
            }
        }
        "label" => {
            let pairs = key_values(rest, "LABEL")?;
            let labels = config.entry("Labels").or_insert(json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            for (k, v) in pairs {
                labels.as_object_mut().unwrap().insert(k, json!(v));
            }
        }
        "expose" => {
            let ports = config.entry("ExposedPorts").or_insert(json!({}));
            if !ports.is_object() {
                *ports = json!({});
            }
            for spec in rest.split_whitespace() {
                for p in port_spec(spec)? {
                    ports.as_object_mut().unwrap().insert(p, json!({}));
                }
            }
        }
        "onbuild" => {
            let list = config.entry("OnBuild").or_insert(json!([]));
            if !list.is_array() {
                *list = json!([]);
            }
            list.as_array_mut().unwrap().push(json!(rest));
        }
        "user" => {
            config.insert("User".into(), json!(rest));
        }
        "workdir" => {
            config.insert("WorkingDir".into(), json!(rest));
        }
        "volume" => {
            let vols: Vec<String> = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) => v,
                Err(_) => rest.split_whitespace().map(str::to_string).collect(),
            };
            let map = config.entry("Volumes").or_insert(json!({}));
            if !map.is_object() {
                *map = json!({});
            }
            for v in vols {
                map.as_object_mut().unwrap().insert(v, json!({}));
            }
        }
        _ => return Err(Error::Invalid(format!("{lower} is not a valid change command"))),
    }
    Ok(())
}

/// JSON array form, else shell form (`/bin/sh -c "…"`).
fn exec_or_shell(rest: &str) -> Vec<String> {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), rest.to_string()]
}

/// `K=V K2="V 2"` pairs, or the legacy `K V` form.
fn key_values(rest: &str, instr: &str) -> Result<Vec<(String, String)>> {
    let words = split_words(rest);
    if words.is_empty() {
        return Err(Error::Invalid(format!("{instr} requires at least one argument")));
    }
    if !words[0].contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::Invalid(format!("{instr} names can not be blank"))),
        })
        .collect()
}

/// Split on whitespace, honouring double and single quotes and backslashes.
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    any = true;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_table() {
        let cases: &[(&[&str], &str)] = &[
            (&["CMD [\"/bin/sh\"]"], r#"{"Cmd":["/bin/sh"]}"#),
            (&["CMD echo hi"], r#"{"Cmd":["/bin/sh","-c","echo hi"]}"#),
            (&["ENV A=1 B=\"two words\""], r#"{"Env":["A=1","B=two words"]}"#),
            (&["ENV A 1 2"], r#"{"Env":["A=1 2"]}"#),
            (&["ENV A=1", "ENV A=2"], r#"{"Env":["A=2"]}"#),
            (&["EXPOSE 9090 53/udp"], r#"{"ExposedPorts":{"9090/tcp":{},"53/udp":{}}}"#),
            (&["EXPOSE 8000-8002/TCP"], r#"{"ExposedPorts":{"8000/tcp":{},"8001/tcp":{},"8002/tcp":{}}}"#),
            (&["LABEL a=b"], r#"{"Labels":{"a":"b"}}"#),
            (&["ONBUILD RUN true"], r#"{"OnBuild":["RUN true"]}"#),
            (&["USER ia", "WORKDIR /srv"], r#"{"User":"ia","WorkingDir":"/srv"}"#),
            (&["VOLUME /data"], r#"{"Volumes":{"/data":{}}}"#),
            (&["ENTRYPOINT [\"/bin/echo\"]"], r#"{"Entrypoint":["/bin/echo"]}"#),
        ];
        for (changes, want) in cases {
            let mut m = Map::new();
            let ch: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
            apply_changes(&mut m, &ch).unwrap();
            assert_eq!(Value::Object(m).to_string(), *want, "{changes:?}");
        }
    }

    #[test]
    fn invalid_instructions_are_dockers_errors() {
        for (c, msg) in [
            ("FROM x", "from is not a valid change command"),
            ("STOPSIGNAL SIGKILL", "stopsignal is not a valid change command"),
            ("BOGUS x", "bogus is not a valid change command"),
            ("EXPOSE abc", "Invalid containerPort: abc"),
            ("EXPOSE 80 70000/udp", "Invalid containerPort: 70000"),
            ("EXPOSE 80/xyz", "Invalid proto: xyz"),
        ] {
            let e = apply_changes(&mut Map::new(), &[c.to_string()]).unwrap_err();
            assert_eq!(e.to_string(), msg);
        }
    }
}
