//! Docker's `--format` handling for list commands: the [`Format`] a user asked for, and
//! rendering rows with it — through Go's `text/tabwriter` for tables.
//!
//! Contract:
//! * [`Format::parse`] follows docker/cli: empty or exactly `table` → the command's default
//!   table ([`Format::DefaultTable`]); exactly `json` → one JSON object per line
//!   ([`Format::Json`], Docker 28); a string starting with `table` → [`Format::Table`] with
//!   the rest as template; anything else → [`Format::Raw`]. The template text is trimmed
//!   of spaces and the two-character escapes `\t` and `\n` become a tab and a newline.
//! * [`Format::render`] executes the template once per row (each row a JSON object standing
//!   for Docker's Go context struct — build it with the struct's fields, in alphabetical
//!   order so that `{{json .}}` matches Docker's), each followed by a newline. Tables add a
//!   header line made by executing the *same* template over the header map with Docker's
//!   header functions, then go through [`tabwrite`] with Docker's settings (minwidth 10,
//!   padding 3, padchar ' ', no flags). Nothing is written when a row fails; the error is
//!   returned.
//! * [`tabwrite`] is Go's `text/tabwriter` cell algorithm: tab-terminated cells form
//!   columns; a column block is a run of consecutive lines having that column; its width is
//!   `max(minwidth, widest cell + padding)` (width in Unicode scalar values); the last cell
//!   of a line is not part of a column and is never padded.

use std::io::Write;

use serde_json::{Map, Value};

use super::json::to_go_json;
use super::template::{ExecOptions, Template};
use super::FormatError;

/// `text/tabwriter` settings (padchar is always a space, flags always 0).
#[derive(Clone, Copy, Debug)]
pub struct TabConfig {
    pub minwidth: usize,
    pub padding: usize,
}

/// docker/cli: `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
pub const DOCKER_TABS: TabConfig = TabConfig { minwidth: 10, padding: 3 };

/// Aligns tab-separated text as Go's `text/tabwriter` does (see the module doc).
pub fn tabwrite(text: &str, cfg: TabConfig) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, cfg, &mut out);
    out
}

fn cell_width(s: &str) -> usize {
    s.chars().count()
}

fn format_block(
    lines: &[Vec<&str>],
    line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    cfg: TabConfig,
    out: &mut String,
) {
    let column = widths.len();
    let mut line0 = line0;
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // a block of lines with a cell in this column starts here
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = cfg.minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(cell_width(lines[this][column]) + cfg.padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, cfg, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], line0: usize, line1: usize, widths: &[usize], out: &mut String) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() {
                let w = cell_width(cell);
                for _ in w..widths[j] {
                    out.push(' ');
                }
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

/// What `--format` asked for.
#[derive(Debug, Clone)]
pub enum Format {
    /// No `--format`, or exactly `table`: the command's default columns.
    DefaultTable(Template),
    /// `table <template>`.
    Table(Template),
    /// `json`: each row as one compact JSON object per line.
    Json,
    /// Any other template: one execution per row, no header, no alignment.
    Raw(Template),
}

/// docker/cli's `preFormat`: drop the `table` keyword, trim spaces, turn `\t` and `\n`
/// escapes into the characters.
pub fn prepare_template(format: &str) -> String {
    let f = format.strip_prefix("table").unwrap_or(format);
    f.trim_matches(' ').replace("\\t", "\t").replace("\\n", "\n")
}

/// How rows of one command are described to [`Format::render`].
#[derive(Clone, Copy, Debug)]
pub struct Columns<'a> {
    /// The Go type Docker executes the template on, for `can't evaluate field X in type T`
    /// (e.g. `*formatter.imageContext`; see `presets`).
    pub context_type: &'a str,
    /// Field name → table header (`("ID", "IMAGE ID")`, `("CreatedSince", "CREATED")`).
    pub headers: &'a [(&'a str, &'a str)],
}

impl Format {
    /// Parses the user's `--format` (empty when not given); `default_table` is the
    /// command's default, e.g. `table {{.Repository}}\t{{.Tag}}\t…`.
    pub fn parse(user: &str, default_table: &str) -> Result<Format, FormatError> {
        if user.is_empty() || user == "table" {
            return Ok(Format::DefaultTable(Template::parse(&prepare_template(default_table))?));
        }
        if user == "json" {
            return Ok(Format::Json);
        }
        let t = Template::parse(&prepare_template(user))?;
        if user.starts_with("table") {
            Ok(Format::Table(t))
        } else {
            Ok(Format::Raw(t))
        }
    }

    /// True for the two table forms.
    pub fn is_table(&self) -> bool {
        matches!(self, Format::DefaultTable(_) | Format::Table(_))
    }

    /// Renders `rows` to a string (see the module doc).
    pub fn render_to_string(&self, rows: &[Value], cols: &Columns<'_>) -> Result<String, FormatError> {
        let opts = ExecOptions { root_struct: Some(cols.context_type), ..Default::default() };
        let mut body = String::new();
        match self {
            Format::Json => {
                for row in rows {
                    body.push_str(&to_go_json(row, true));
                    body.push('\n');
                }
                Ok(body)
            }
            Format::Raw(t) => {
                for row in rows {
                    body.push_str(&t.execute(row, &opts)?);
                    body.push('\n');
                }
                Ok(body)
            }
            Format::DefaultTable(t) | Format::Table(t) => {
                for row in rows {
                    body.push_str(&t.execute(row, &opts)?);
                    body.push('\n');
                }
                let header_map: Map<String, Value> =
                    cols.headers.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
                let hopts = ExecOptions { header_mode: true, ..Default::default() };
                // Docker ignores a header execution error and keeps what was written
                let (mut text, _) = t.execute_partial(&Value::Object(header_map), &hopts);
                text.push('\n');
                text.push_str(&body);
                Ok(tabwrite(&text, DOCKER_TABS))
            }
        }
    }

    /// Renders `rows` and writes them in one go; an I/O error (e.g. a broken pipe) comes
    /// back as [`FormatError::Io`] for the caller to stop quietly.
    pub fn render(&self, out: &mut dyn Write, rows: &[Value], cols: &Columns<'_>) -> Result<(), FormatError> {
        let s = self.render_to_string(rows, cols)?;
        out.write_all(s.as_bytes())?;
        out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::presets;
    use serde_json::json;

    fn image_rows() -> Vec<Value> {
        // (ID, Repository, Tag, CreatedSince, CreatedAt, Size, VirtualSize)
        let raw = [
            ("8a0ff447c9bd", "ia/imported", "gz", "1 second ago", "2026-11-22 10:57:08 +0000 UTC", "1.98MB", "1.984MB"),
            ("24869d008e7e", "<none>", "<none>", "2 seconds ago", "2026-11-22 10:57:07 +0000 UTC", "1.98MB", "1.984MB"),
            ("75f55d87b8ce", "ia/imported", "1", "2 seconds ago", "2026-11-22 10:57:07 +0000 UTC", "1.98MB", "1.984MB"),
            ("23501bdefb31", "ia/layered", "1", "2 years ago", "2024-01-01 00:06:40 +0000 UTC", "2.25MB", "2.247MB"),
            ("d45aab138e67", "ia/busybox", "1.35", "2 years ago", "2024-01-01 00:00:00 +0000 UTC", "1.98MB", "1.984MB"),
            (
                "d45aab138e67",
                "ia/busybox",
                "latest",
                "2 years ago",
                "2024-01-01 00:00:00 +0000 UTC",
                "1.98MB",
                "1.984MB",
            ),
        ];
        raw.iter()
            .map(|(id, repo, tag, since, at, size, vsize)| {
                json!({"Containers":"N/A","CreatedAt":at,"CreatedSince":since,"Digest":"<none>","ID":id,"Repository":repo,"SharedSize":"N/A","Size":size,"Tag":tag,"UniqueSize":"N/A","VirtualSize":vsize})
            })
            .collect()
    }

    fn history_rows() -> Vec<Value> {
        let raw = [
            ("23501bdefb31", "/bin/sh -c #(nop)  ENV FOO=bar", "0B", "", "2024-01-01T00:06:40Z", "0"),
            ("<missing>", "/bin/sh -c true", "0B", "empty changeset", "2024-01-01T00:06:40Z", "0"),
            ("<missing>", "/bin/sh -c rm -rf /opt/data && mkdir -p /opt…", "35B", "", "2024-01-01T00:05:00Z", "35"),
            ("<missing>", "/bin/sh -c rm -rf /opt/data/a /var/log && ch…", "42B", "", "2024-01-01T00:03:20Z", "42"),
            ("<missing>", "/bin/sh -c #(nop)  LABEL org.example.ia.imag…", "0B", "", "2024-01-01T00:02:30Z", "0"),
            (
                "<missing>",
                "/bin/sh -c #(nop) COPY dir:layer1 in / ",
                "262kB",
                "additions, modifications, file whiteout",
                "2024-01-01T00:01:40Z",
                "262453",
            ),
            ("<missing>", "/bin/sh -c #(nop)  CMD [\"sh\"]", "0B", "", "2024-01-01T00:00:00Z", "0"),
            (
                "<missing>",
                "/bin/sh -c #(nop) ADD busybox-rootfs.tar in …",
                "1.98MB",
                "ia base layer",
                "2024-01-01T00:00:00Z",
                "1984281",
            ),
        ];
        raw.iter()
            .map(|(id, by, size, comment, at, raw_size)| {
                let _ = raw_size;
                json!({"Comment": comment, "CreatedAt": at, "CreatedBy": by, "CreatedSince": "2 years ago", "ID": id, "Size": size})
            })
            .collect()
    }

    fn render(user: &str, default: &str, rows: &[Value], cols: &Columns<'_>) -> Result<String, String> {
        let f = Format::parse(user, default).map_err(|e| e.to_string())?;
        f.render_to_string(rows, cols).map_err(|e| e.to_string())
    }

    #[test]
    fn tabwriter_matches_go() {
        let cases: &[(&str, &str)] = &[
            ("a\tb\tc\n", "a         b         c\n"),
            ("REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n", "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"),
            ("x\t\n", "x         \n"),
            ("aaaaaaaaaaaa\tb\nc\td\n", "aaaaaaaaaaaa   b\nc              d\n"),
            // a line without tabs ends the column block
            (
                "a\tb\nno tabs here at all\nlonger cell here\tc\n",
                "a         b\nno tabs here at all\nlonger cell here   c\n",
            ),
            // shorter line inside a block: its last cell is not padded
            (
                "a\tbbbbbbbbbbbbbbb\tc\nd\te\nf\tg\th\n",
                "a         bbbbbbbbbbbbbbb   c\nd         e\nf         g         h\n",
            ),
            ("日本\tx\n", "日本        x\n"),
            ("no newline\tat end", "no newline   at end"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(tabwrite(input, DOCKER_TABS), *want, "{input:?}");
        }
    }

    #[test]
    fn parse_formats() {
        let d = presets::IMAGES_TABLE;
        assert!(matches!(Format::parse("", d).unwrap(), Format::DefaultTable(_)));
        assert!(matches!(Format::parse("table", d).unwrap(), Format::DefaultTable(_)));
        assert!(matches!(Format::parse("json", d).unwrap(), Format::Json));
        assert!(matches!(Format::parse("table {{.ID}}", d).unwrap(), Format::Table(_)));
        assert!(matches!(Format::parse("{{.ID}}", d).unwrap(), Format::Raw(_)));
        assert_eq!(prepare_template("table {{.A}}\\t{{.B}}\\n "), "{{.A}}\t{{.B}}\n");
        assert_eq!(
            Format::parse("{{.ID", d).unwrap_err().to_string(),
            "template parsing error: template: :1: unclosed action"
        );
    }

    #[test]
    fn images_like_docker() {
        let rows = image_rows();
        let cols = presets::IMAGES;
        let d = presets::IMAGES_TABLE;
        let cases: &[(&str, &[Value], Result<&str, &str>)] = &[
            (
                "",
                &rows,
                Ok("REPOSITORY    TAG       IMAGE ID       CREATED         SIZE
ia/imported   gz        8a0ff447c9bd   1 second ago    1.98MB
<none>        <none>    24869d008e7e   2 seconds ago   1.98MB
ia/imported   1         75f55d87b8ce   2 seconds ago   1.98MB
ia/layered    1         23501bdefb31   2 years ago     2.25MB
ia/busybox    1.35      d45aab138e67   2 years ago     1.98MB
ia/busybox    latest    d45aab138e67   2 years ago     1.98MB
"),
            ),
            (
                "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}",
                &rows,
                Ok("REPOSITORY    TAG       IMAGE ID       CREATED         SIZE
ia/imported   gz        8a0ff447c9bd   1 second ago    1.98MB
<none>        <none>    24869d008e7e   2 seconds ago   1.98MB
ia/imported   1         75f55d87b8ce   2 seconds ago   1.98MB
ia/layered    1         23501bdefb31   2 years ago     2.25MB
ia/busybox    1.35      d45aab138e67   2 years ago     1.98MB
ia/busybox    latest    d45aab138e67   2 years ago     1.98MB
"),
            ),
            (
                "table {{.ID}}\\t{{.CreatedAt}}\\t{{.Digest}}\\t{{.SharedSize}}\\t{{.UniqueSize}}\\t{{.VirtualSize}}\\t{{.Containers}}",
                &rows,
                Ok("IMAGE ID       CREATED AT                      DIGEST    SHARED SIZE   UNIQUE SIZE   SIZE      CONTAINERS
8a0ff447c9bd   2026-11-22 10:57:08 +0000 UTC   <none>    N/A           N/A           1.984MB   N/A
24869d008e7e   2026-11-22 10:57:07 +0000 UTC   <none>    N/A           N/A           1.984MB   N/A
75f55d87b8ce   2026-11-22 10:57:07 +0000 UTC   <none>    N/A           N/A           1.984MB   N/A
23501bdefb31   2024-01-01 00:06:40 +0000 UTC   <none>    N/A           N/A           2.247MB   N/A
d45aab138e67   2024-01-01 00:00:00 +0000 UTC   <none>    N/A           N/A           1.984MB   N/A
d45aab138e67   2024-01-01 00:00:00 +0000 UTC   <none>    N/A           N/A           1.984MB   N/A
"),
            ),
            (
                "table {{.Repository}}\t{{.Tag}}",
                &rows[3..5],
                Ok("REPOSITORY   TAG\nia/layered   1\nia/busybox   1.35\n"),
            ),
            (
                "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}",
                &rows,
                Ok("ia/imported:gz 8a0ff447c9bd 1.98MB
<none>:<none> 24869d008e7e 1.98MB
ia/imported:1 75f55d87b8ce 1.98MB
ia/layered:1 23501bdefb31 2.25MB
ia/busybox:1.35 d45aab138e67 1.98MB
ia/busybox:latest d45aab138e67 1.98MB
"),
            ),
            (
                "{{json .}}",
                &rows[..2],
                Ok(r#"{"Containers":"N/A","CreatedAt":"2026-11-22 10:57:08 +0000 UTC","CreatedSince":"1 second ago","Digest":"\u003cnone\u003e","ID":"8a0ff447c9bd","Repository":"ia/imported","SharedSize":"N/A","Size":"1.98MB","Tag":"gz","UniqueSize":"N/A","VirtualSize":"1.984MB"}
{"Containers":"N/A","CreatedAt":"2026-11-22 10:57:07 +0000 UTC","CreatedSince":"2 seconds ago","Digest":"\u003cnone\u003e","ID":"24869d008e7e","Repository":"\u003cnone\u003e","SharedSize":"N/A","Size":"1.98MB","Tag":"\u003cnone\u003e","UniqueSize":"N/A","VirtualSize":"1.984MB"}
"#),
            ),
            (
                "json",
                &rows[3..4],
                Ok(r#"{"Containers":"N/A","CreatedAt":"2024-01-01 00:06:40 +0000 UTC","CreatedSince":"2 years ago","Digest":"\u003cnone\u003e","ID":"23501bdefb31","Repository":"ia/layered","SharedSize":"N/A","Size":"2.25MB","Tag":"1","UniqueSize":"N/A","VirtualSize":"2.247MB"}
"#),
            ),
            ("", &[], Ok("REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n")),
            ("{{.ID}}", &[], Ok("")),
            (
                "{{.Nonexistent}}",
                &rows,
                Err(r#"template parsing error: template: :1:2: executing "" at <.Nonexistent>: can't evaluate field Nonexistent in type *formatter.imageContext"#),
            ),
            (
                "table {{.Nonexistent}}",
                &rows,
                Err(r#"template parsing error: template: :1:2: executing "" at <.Nonexistent>: can't evaluate field Nonexistent in type *formatter.imageContext"#),
            ),
        ];
        for (user, rows, want) in cases {
            let got = render(user, d, rows, &cols);
            assert_eq!(got.as_deref().map_err(|e| e.as_str()), *want, "format {user:?}");
        }
        // --digests default
        let got = render("", presets::IMAGES_TABLE_DIGESTS, &rows[..2], &cols).unwrap();
        assert_eq!(
            got,
            "REPOSITORY    TAG       DIGEST    IMAGE ID       CREATED         SIZE
ia/imported   gz        <none>    8a0ff447c9bd   1 second ago    1.98MB
<none>        <none>    <none>    24869d008e7e   2 seconds ago   1.98MB
"
        );
    }

    #[test]
    fn history_like_docker() {
        let rows = history_rows();
        let cols = presets::HISTORY;
        let default = render("", presets::HISTORY_TABLE, &rows, &cols).unwrap();
        assert_eq!(
            default,
            "IMAGE          CREATED       CREATED BY                                      SIZE      COMMENT
23501bdefb31   2 years ago   /bin/sh -c #(nop)  ENV FOO=bar                  0B        
<missing>      2 years ago   /bin/sh -c true                                 0B        empty changeset
<missing>      2 years ago   /bin/sh -c rm -rf /opt/data && mkdir -p /opt…   35B       
<missing>      2 years ago   /bin/sh -c rm -rf /opt/data/a /var/log && ch…   42B       
<missing>      2 years ago   /bin/sh -c #(nop)  LABEL org.example.ia.imag…   0B        
<missing>      2 years ago   /bin/sh -c #(nop) COPY dir:layer1 in /          262kB     additions, modifications, file whiteout
<missing>      2 years ago   /bin/sh -c #(nop)  CMD [\"sh\"]                   0B        
<missing>      2 years ago   /bin/sh -c #(nop) ADD busybox-rootfs.tar in …   1.98MB    ia base layer
"
        );
        let raw =
            render("{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", presets::HISTORY_TABLE, &rows, &cols).unwrap();
        assert_eq!(
            raw,
            "23501bdefb31|/bin/sh -c #(nop)  ENV FOO=bar|0B|
<missing>|/bin/sh -c true|0B|empty changeset
<missing>|/bin/sh -c rm -rf /opt/data && mkdir -p /opt…|35B|
<missing>|/bin/sh -c rm -rf /opt/data/a /var/log && ch…|42B|
<missing>|/bin/sh -c #(nop)  LABEL org.example.ia.imag…|0B|
<missing>|/bin/sh -c #(nop) COPY dir:layer1 in / |262kB|additions, modifications, file whiteout
<missing>|/bin/sh -c #(nop)  CMD [\"sh\"]|0B|
<missing>|/bin/sh -c #(nop) ADD busybox-rootfs.tar in …|1.98MB|ia base layer
"
        );
        let two = [json!({"ID": "d45aab138e67", "Size": "0B"}), json!({"ID": "<missing>", "Size": "1.98MB"})];
        assert_eq!(
            render("table {{.ID}}\\t{{.Size}}", presets::HISTORY_TABLE, &two, &cols).unwrap(),
            "IMAGE          SIZE\nd45aab138e67   0B\n<missing>      1.98MB\n"
        );
        // -H=false: CREATED AT and raw sizes
        let mut not_human = rows[4..6].to_vec();
        not_human[0]["Size"] = json!("0");
        not_human[1]["Size"] = json!("262453");
        let h = render("", presets::HISTORY_TABLE_NOT_HUMAN, &not_human, &cols).unwrap();
        assert_eq!(
            h,
            "IMAGE       CREATED AT             CREATED BY                                      SIZE      COMMENT
<missing>   2024-01-01T00:02:30Z   /bin/sh -c #(nop)  LABEL org.example.ia.imag…   0         
<missing>   2024-01-01T00:01:40Z   /bin/sh -c #(nop) COPY dir:layer1 in /          262453    additions, modifications, file whiteout
"
        );
    }

    #[test]
    fn system_df_like_docker() {
        let rows = [
            json!({"Active":"2","Reclaimable":"1.984MB (88%)","Size":"2.247MB","TotalCount":"2","Type":"Images"}),
            json!({"Active":"0","Reclaimable":"364.6kB (100%)","Size":"364.6kB","TotalCount":"4","Type":"Containers"}),
            json!({"Active":"0","Reclaimable":"0B","Size":"0B","TotalCount":"0","Type":"Local Volumes"}),
            json!({"Active":"0","Reclaimable":"0B","Size":"0B","TotalCount":"0","Type":"Build Cache"}),
        ];
        let cols = presets::SYSTEM_DF;
        assert_eq!(
            render("", presets::SYSTEM_DF_TABLE, &rows, &cols).unwrap(),
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE
Images          2         2         2.247MB   1.984MB (88%)
Containers      4         0         364.6kB   364.6kB (100%)
Local Volumes   0         0         0B        0B
Build Cache     0         0         0B        0B
"
        );
        assert_eq!(
            render("{{json .}}", presets::SYSTEM_DF_TABLE, &rows[..1], &cols).unwrap(),
            "{\"Active\":\"2\",\"Reclaimable\":\"1.984MB (88%)\",\"Size\":\"2.247MB\",\"TotalCount\":\"2\",\"Type\":\"Images\"}\n"
        );
        // system df -v, images section
        let v = [
            json!({"Containers":"2","CreatedSince":"2 years ago","ID":"23501bdefb31","Repository":"ia/layered","SharedSize":"1.984MB","Size":"2.25MB","Tag":"1","UniqueSize":"262.5kB"}),
            json!({"Containers":"1","CreatedSince":"2 years ago","ID":"d45aab138e67","Repository":"ia/busybox","SharedSize":"1.984MB","Size":"1.98MB","Tag":"1.35","UniqueSize":"0B"}),
        ];
        assert_eq!(
            render("", presets::SYSTEM_DF_IMAGES_TABLE, &v, &presets::IMAGES).unwrap(),
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE      SHARED SIZE   UNIQUE SIZE   CONTAINERS
ia/layered   1         23501bdefb31   2 years ago   2.25MB    1.984MB       262.5kB       2
ia/busybox   1.35      d45aab138e67   2 years ago   1.98MB    1.984MB       0B            1
"
        );
        assert_eq!(
            render("", presets::SYSTEM_DF_VOLUMES_TABLE, &[], &presets::SYSTEM_DF_VOLUMES).unwrap(),
            "VOLUME NAME   LINKS     SIZE\n"
        );
        assert_eq!(
            render("", presets::SYSTEM_DF_BUILD_CACHE_TABLE, &[], &presets::SYSTEM_DF_BUILD_CACHE).unwrap(),
            "CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n"
        );
        let c = [
            json!({"Command":"\"sh -c 'dd if=/dev/z…\"","RunningFor":"1 second ago","ID":"b7065e5a3d5e","Image":"ia/busybox:1.35","LocalVolumes":"0","Names":"ia-df","Size":"102kB","Status":"Exited (0) Less than a second ago"}),
            json!({"Command":"\"sh\"","RunningFor":"7 seconds ago","ID":"7c42144e5849","Image":"8a0ff447c9bd","LocalVolumes":"0","Names":"ia-c3","Size":"0B","Status":"Created"}),
        ];
        assert_eq!(
            render("", presets::SYSTEM_DF_CONTAINERS_TABLE, &c, &presets::SYSTEM_DF_CONTAINERS).unwrap(),
            "CONTAINER ID   IMAGE             COMMAND                  LOCAL VOLUMES   SIZE      CREATED         STATUS                              NAMES
b7065e5a3d5e   ia/busybox:1.35   \"sh -c 'dd if=/dev/z…\"   0               102kB     1 second ago    Exited (0) Less than a second ago   ia-df
7c42144e5849   8a0ff447c9bd      \"sh\"                     0               0B        7 seconds ago   Created                             ia-c3
"
        );
    }

    #[test]
    fn broken_pipe_is_returned_not_panicked() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let f = Format::parse("", presets::IMAGES_TABLE).unwrap();
        let err = f.render(&mut Broken, &image_rows(), &presets::IMAGES).unwrap_err();
        assert!(err.is_broken_pipe());
    }
}
