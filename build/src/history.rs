//! What each instruction writes into the image's history (`created_by`)
//! and, for the classic builder, into `container_config.Cmd` — Docker
//! 20.10's strings for both builders, measured (run-build-facts §2.5).

use crate::instruction::{Command, Healthcheck, ShellOrExec};
use crate::scope::Flavor;

/// Go's `%q` of a string slice: `["a" "b c"]`.
pub fn go_quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| crate::error::go_quote(s)).collect();
    format!("[{}]", items.join(" "))
}

/// Go's `%v` of a string slice: `[a b c]`.
pub fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// Go's `time.Duration.String()` of `d`.
pub fn go_duration(d: std::time::Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    let trim = |x: f64| {
        let s = format!("{x:.9}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    };
    if ns < 1_000_000 {
        return format!("{}µs", trim(ns as f64 / 1e3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", trim(ns as f64 / 1e6));
    }
    let total = ns as f64 / 1e9;
    let h = (ns / 3_600_000_000_000) as u64;
    let m = ((ns / 60_000_000_000) % 60) as u64;
    let s = total - (h * 3600 + m * 60) as f64;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim(s)));
    out
}

/// Go's `%q` of an int: a quoted character (`'\x00'`, `'A'`).
fn go_char(n: i32) -> String {
    match u8::try_from(n) {
        Ok(b) if (0x20..0x7f).contains(&b) && b != b'\'' && b != b'\\' => format!("'{}'", b as char),
        Ok(b) => format!("'\\x{b:02x}'"),
        Err(_) => format!("'\\U{n:08x}'"),
    }
}

/// The ports of EXPOSE with their protocol (`80` → `80/tcp`), sorted.
pub fn expose_ports(ports: &[String]) -> Vec<String> {
    let mut v: Vec<String> =
        ports.iter().map(|p| if p.contains('/') { p.to_ascii_lowercase() } else { format!("{p}/tcp") }).collect();
    v.sort();
    v.dedup();
    v
}

/// The words of a shell- or exec-form command as the image stores them.
pub fn command_words(c: &ShellOrExec, shell: &[String]) -> Vec<String> {
    match c {
        ShellOrExec::Exec(v) => v.clone(),
        ShellOrExec::Shell(s) => {
            let mut v = shell.to_vec();
            v.push(s.clone());
            v
        }
    }
}

/// The text after `#(nop) ` (legacy) or alone (BuildKit) for an
/// instruction that changes only the config. `raw` is the instruction
/// before expansion (ARG shows its default as written).
pub fn config_text(cmd: &Command, raw: &Command, shell: &[String], flavor: Flavor) -> String {
    let pairs = |p: &[(String, String)]| p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
    match cmd {
        Command::Env(p) => format!("ENV {}", pairs(p)),
        Command::Label(p) => format!("LABEL {}", pairs(p)),
        Command::Arg(_) => {
            let Command::Arg(decl) = raw else { return String::new() };
            let items: Vec<String> = decl
                .iter()
                .map(|(k, d)| match d {
                    Some(d) => format!("{k}={d}"),
                    None => k.clone(),
                })
                .collect();
            format!("ARG {}", items.join(" "))
        }
        Command::User(u) => format!("USER {u}"),
        Command::Expose(p) => {
            let ports = expose_ports(p);
            match flavor {
                Flavor::Legacy => {
                    // The classic builder lists the ports as written, sorted.
                    let mut raw = p.clone();
                    raw.sort();
                    format!("EXPOSE {}", raw.join(" "))
                }
                Flavor::BuildKit => {
                    format!("EXPOSE map[{}]", ports.iter().map(|p| format!("{p}:{{}}")).collect::<Vec<_>>().join(" "))
                }
            }
        }
        Command::Volume(v) => format!("VOLUME {}", go_list(v)),
        Command::StopSignal(s) => format!("STOPSIGNAL {s}"),
        Command::Healthcheck(Healthcheck::None) => "HEALTHCHECK &{[\"NONE\"] \"0s\" \"0s\" \"0s\" '\\x00'}".into(),
        Command::Healthcheck(Healthcheck::Cmd { test, interval, timeout, start_period, retries, .. }) => format!(
            "HEALTHCHECK &{{{} {} {} {} {}}}",
            go_quoted_list(test),
            crate::error::go_quote(&go_duration(*interval)),
            crate::error::go_quote(&go_duration(*timeout)),
            crate::error::go_quote(&go_duration(*start_period)),
            go_char(*retries)
        ),
        Command::Shell(v) => format!("SHELL {}", go_list(v)),
        Command::Cmd(c) => format!("CMD {}", go_quoted_list(&command_words(c, shell))),
        Command::Entrypoint(c) => format!("ENTRYPOINT {}", go_quoted_list(&command_words(c, shell))),
        Command::Onbuild(t) => format!("ONBUILD {t}"),
        Command::Maintainer(m) => format!("MAINTAINER {m}"),
        Command::Workdir(w) => format!("WORKDIR {w}"),
        _ => String::new(),
    }
}

/// The classic builder's `container_config.Cmd` of a config-only step
/// (`[shell…, "#(nop) ", text]`) or of WORKDIR/COPY/ADD (one argument,
/// `[shell…, "#(nop) text"]`).
pub fn legacy_nop_cmd(shell: &[String], text: &str, one_arg: bool) -> Vec<String> {
    let mut v = shell.to_vec();
    if one_arg {
        v.push(format!("#(nop) {text}"));
    } else {
        v.push("#(nop) ".into());
        v.push(text.to_string());
    }
    v
}

/// The `container_config.Cmd` of a RUN step: `|N K=V…` (build args in
/// scope) before the command words.
pub fn run_cmd(words: &[String], args: &[(String, String)]) -> Vec<String> {
    let mut v = Vec::new();
    if !args.is_empty() {
        v.push(format!("|{}", args.len()));
        v.extend(args.iter().map(|(k, val)| format!("{k}={val}")));
    }
    v.extend(words.iter().cloned());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn texts_as_docker_writes_them() {
        let sh = s(&["/bin/sh", "-c"]);
        let none = Command::Maintainer(String::new());
        let cases: Vec<(Command, Flavor, &str)> = vec![
            (
                Command::Label(vec![("a".into(), "b".into()), ("c d".into(), "e".into())]),
                Flavor::Legacy,
                "LABEL a=b c d=e",
            ),
            (
                Command::Env(vec![("X".into(), "1".into()), ("Y".into(), "two words".into())]),
                Flavor::BuildKit,
                "ENV X=1 Y=two words",
            ),
            (Command::User("nobody".into()), Flavor::Legacy, "USER nobody"),
            (Command::Expose(s(&["8080/tcp", "53/udp"])), Flavor::Legacy, "EXPOSE 53/udp 8080/tcp"),
            (Command::Expose(s(&["80", "443/tcp", "53/udp"])), Flavor::Legacy, "EXPOSE 443/tcp 53/udp 80"),
            (Command::Expose(s(&["8080/tcp", "53/udp"])), Flavor::BuildKit, "EXPOSE map[53/udp:{} 8080/tcp:{}]"),
            (Command::Volume(s(&["/data"])), Flavor::Legacy, "VOLUME [/data]"),
            (Command::StopSignal("SIGTERM".into()), Flavor::Legacy, "STOPSIGNAL SIGTERM"),
            (
                Command::Healthcheck(Healthcheck::Cmd {
                    test: s(&["CMD-SHELL", "true"]),
                    interval: Duration::from_secs(5),
                    timeout: Duration::ZERO,
                    start_period: Duration::ZERO,
                    start_interval: Duration::ZERO,
                    retries: 0,
                }),
                Flavor::Legacy,
                "HEALTHCHECK &{[\"CMD-SHELL\" \"true\"] \"5s\" \"0s\" \"0s\" '\\x00'}",
            ),
            (Command::Shell(s(&["/bin/sh", "-c"])), Flavor::Legacy, "SHELL [/bin/sh -c]"),
            (Command::Entrypoint(ShellOrExec::Exec(s(&["/bin/sh"]))), Flavor::Legacy, "ENTRYPOINT [\"/bin/sh\"]"),
            (Command::Cmd(ShellOrExec::Exec(s(&["-c", "echo hi"]))), Flavor::Legacy, "CMD [\"-c\" \"echo hi\"]"),
            (
                Command::Cmd(ShellOrExec::Shell("echo hi".into())),
                Flavor::Legacy,
                "CMD [\"/bin/sh\" \"-c\" \"echo hi\"]",
            ),
            (Command::Onbuild("RUN echo onbuild".into()), Flavor::Legacy, "ONBUILD RUN echo onbuild"),
            (Command::Maintainer("me".into()), Flavor::Legacy, "MAINTAINER me"),
        ];
        for (cmd, flavor, want) in cases {
            assert_eq!(config_text(&cmd, &none, &sh, flavor), want);
        }
        let raw = Command::Arg(vec![("A1".into(), Some("foo".into())), ("A2".into(), None)]);
        assert_eq!(config_text(&raw, &raw, &sh, Flavor::Legacy), "ARG A1=foo A2");
        assert_eq!(
            legacy_nop_cmd(&sh, "ENV X=1", false).join(" "),
            "/bin/sh -c #(nop)  ENV X=1",
            "two spaces after #(nop) in the two-argument form"
        );
        assert_eq!(legacy_nop_cmd(&sh, "WORKDIR /app", true).join(" "), "/bin/sh -c #(nop) WORKDIR /app");
        let args = vec![("A1".to_string(), "foo".to_string()), ("A2".to_string(), "bar".to_string())];
        assert_eq!(
            run_cmd(&s(&["/bin/sh", "-c", "echo $A1"]), &args).join(" "),
            "|2 A1=foo A2=bar /bin/sh -c echo $A1"
        );
    }

    #[test]
    fn durations_like_go() {
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(3600), "1h0m0s"),
        ] {
            assert_eq!(go_duration(d), want);
        }
        assert_eq!(go_char(0), "'\\x00'");
        assert_eq!(go_char(3), "'\\x03'");
        assert_eq!(go_char(65), "'A'");
    }
}
