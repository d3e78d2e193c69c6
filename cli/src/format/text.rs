//! Docker's string shortening for table cells.
//!
//! Contract: [`ellipsis`] is docker/cli `formatter.Ellipsis` — a string wider than
//! `max_width` display columns is cut to `max_width - 1` columns plus `…` (East Asian wide
//! characters count 2); `history` shortens CREATED BY to 45, `ps`/`system df -v` COMMAND to
//! 20. [`truncate_id`] is `stringid.TruncateID`: drop an `algo:` prefix, keep 12
//! characters.

/// Display width of one character (2 for East Asian wide/fullwidth, else 1).
fn char_width(c: char) -> usize {
    let u = c as u32;
    let wide = matches!(u,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF |
        0x4E00..=0x9FFF | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF |
        0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1F64F |
        0x1F900..=0x1F9FF | 0x20000..=0x2FFFD | 0x30000..=0x3FFFD);
    if wide {
        2
    } else {
        1
    }
}

/// docker/cli `Ellipsis(s, maxDisplayWidth)`.
pub fn ellipsis(s: &str, max_width: usize) -> String {
    if max_width == 0 {
        return String::new();
    }
    let chars: Vec<char> = s.chars().collect();
    if max_width == 1 {
        return chars.first().map(|c| c.to_string()).unwrap_or_default();
    }
    if s.len() == chars.len() {
        if s.len() <= max_width {
            return s.to_string();
        }
        let mut out: String = chars[..max_width - 1].iter().collect();
        out.push('…');
        return out;
    }
    let mut widths = Vec::with_capacity(chars.len());
    let mut total = 0;
    for c in &chars {
        total += char_width(*c);
        widths.push(total);
    }
    if total <= max_width {
        return s.to_string();
    }
    for i in 0..widths.len().saturating_sub(1) {
        if widths[i] < max_width && widths[i + 1] >= max_width {
            let mut out: String = chars[..=i].iter().collect();
            out.push('…');
            return out;
        }
    }
    s.to_string()
}

/// `stringid.TruncateID`: `sha256:8a0ff447c9bd52…` → `8a0ff447c9bd`.
pub fn truncate_id(id: &str) -> String {
    let id = match id.find(':') {
        Some(i) => &id[i + 1..],
        None => id,
    };
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ellipsis_like_docker() {
        let cases: &[(&str, usize, &str)] = &[
            ("/bin/sh -c #(nop)  ENV FOO=bar", 45, "/bin/sh -c #(nop)  ENV FOO=bar"),
            (
                "/bin/sh -c rm -rf /opt/data && mkdir -p /opt/data /var/log && echo ...",
                45,
                "/bin/sh -c rm -rf /opt/data && mkdir -p /opt…",
            ),
            (
                "/bin/sh -c #(nop)  LABEL org.example.ia.image=layered",
                45,
                "/bin/sh -c #(nop)  LABEL org.example.ia.imag…",
            ),
            ("/bin/sh -c #(nop) ADD busybox-rootfs.tar in / ", 45, "/bin/sh -c #(nop) ADD busybox-rootfs.tar in …"),
            ("/bin/sh -c #(nop) ADD busybox-rootfs.tar in /", 45, "/bin/sh -c #(nop) ADD busybox-rootfs.tar in /"),
            ("sh -c 'dd if=/dev/zero of=/big bs=1k count=100 2>/dev/null'", 20, "sh -c 'dd if=/dev/z…"),
            ("abc", 0, ""),
            ("abc", 1, "a"),
            ("", 1, ""),
            ("héllo wörld", 6, "héllo…"),
            ("日本語のテキスト", 7, "日本語…"),
            ("日本語", 6, "日本語"),
        ];
        for (s, w, want) in cases {
            assert_eq!(ellipsis(s, *w), *want, "{s} {w}");
        }
    }

    #[test]
    fn truncate_id_like_docker() {
        assert_eq!(
            truncate_id("sha256:8a0ff447c9bd526a8de6433de7058eacc131b7fc833c8cbde5911e7b23498085"),
            "8a0ff447c9bd"
        );
        assert_eq!(truncate_id("7c42144e58490c451cd3472d78df72f187926a09995a3411b54f11eb517f553d"), "7c42144e5849");
        assert_eq!(truncate_id("short"), "short");
    }
}
