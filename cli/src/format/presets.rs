//! Docker's default table formats, header names and context type names per command, so
//! that commands pass them to [`super::Format`] instead of spelling them again.
//!
//! Contract: a `*_TABLE` constant is the default `--format` of a command (tabs written as
//! `\t` escapes, as a user would type them); a [`Columns`] value names the Go context type
//! (for error messages) and maps each field a template may use to its header. Rows given
//! to [`super::Format::render`] carry these field names as keys, in alphabetical order
//! (Docker marshals contexts as Go maps, so `{{json .}}` lists keys sorted), all values
//! already formatted as strings (Docker's context methods return strings).

use super::table::Columns;

/// `docker images` (fields: Containers CreatedAt CreatedSince Digest ID Repository
/// SharedSize Size Tag UniqueSize VirtualSize).
pub const IMAGES_TABLE: &str = "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}";
/// `docker images --digests`.
pub const IMAGES_TABLE_DIGESTS: &str =
    "table {{.Repository}}\\t{{.Tag}}\\t{{.Digest}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}";
/// `docker images -q` (and `history -q`): use as a raw `--format`.
pub const QUIET_FORMAT: &str = "{{.ID}}";
pub const IMAGES: Columns<'static> = Columns {
    context_type: "*formatter.imageContext",
    headers: &[
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
        ("Containers", "CONTAINERS"),
        ("VirtualSize", "SIZE"),
        ("SharedSize", "SHARED SIZE"),
        ("UniqueSize", "UNIQUE SIZE"),
    ],
};

/// `docker history` (fields: Comment CreatedAt CreatedBy CreatedSince ID Size; CreatedAt is
/// RFC 3339, CreatedBy is shortened with `ellipsis(…, 45)` unless `--no-trunc`).
pub const HISTORY_TABLE: &str = "table {{.ID}}\\t{{.CreatedSince}}\\t{{.CreatedBy}}\\t{{.Size}}\\t{{.Comment}}";
/// `docker history -H=false` (Size holds the byte count).
pub const HISTORY_TABLE_NOT_HUMAN: &str = "table {{.ID}}\\t{{.CreatedAt}}\\t{{.CreatedBy}}\\t{{.Size}}\\t{{.Comment}}";
pub const HISTORY: Columns<'static> = Columns {
    context_type: "*image.historyContext",
    headers: &[
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ],
};

/// `docker system df` (fields: Active Reclaimable Size TotalCount Type).
pub const SYSTEM_DF_TABLE: &str = "table {{.Type}}\\t{{.TotalCount}}\\t{{.Active}}\\t{{.Size}}\\t{{.Reclaimable}}";
pub const SYSTEM_DF: Columns<'static> = Columns {
    context_type: "*formatter.diskUsageImagesContext",
    headers: &[
        ("Type", "TYPE"),
        ("TotalCount", "TOTAL"),
        ("Active", "ACTIVE"),
        ("Size", "SIZE"),
        ("Reclaimable", "RECLAIMABLE"),
    ],
};

/// `docker system df -v`, "Images space usage:" section (columns [`IMAGES`]).
pub const SYSTEM_DF_IMAGES_TABLE: &str = "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}\\t{{.SharedSize}}\\t{{.UniqueSize}}\\t{{.Containers}}";
/// `docker system df -v`, "Containers space usage:" section.
pub const SYSTEM_DF_CONTAINERS_TABLE: &str = "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.LocalVolumes}}\\t{{.Size}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Names}}";
pub const SYSTEM_DF_CONTAINERS: Columns<'static> = Columns {
    context_type: "*formatter.ContainerContext",
    headers: &[
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("Size", "SIZE"),
        ("RunningFor", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Status", "STATUS"),
        ("State", "STATE"),
        ("Names", "NAMES"),
        ("Ports", "PORTS"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("Networks", "NETWORKS"),
    ],
};
/// `docker system df -v`, "Local Volumes space usage:" section.
pub const SYSTEM_DF_VOLUMES_TABLE: &str = "table {{.Name}}\\t{{.Links}}\\t{{.Size}}";
pub const SYSTEM_DF_VOLUMES: Columns<'static> = Columns {
    context_type: "*formatter.volumeContext",
    headers: &[("Name", "VOLUME NAME"), ("Links", "LINKS"), ("Size", "SIZE"), ("Driver", "DRIVER")],
};
/// `docker system df -v`, build cache section.
pub const SYSTEM_DF_BUILD_CACHE_TABLE: &str = "table {{.ID}}\\t{{.CacheType}}\\t{{.Size}}\\t{{.CreatedSince}}\\t{{.LastUsedSince}}\\t{{.UsageCount}}\\t{{.Shared}}";
pub const SYSTEM_DF_BUILD_CACHE: Columns<'static> = Columns {
    context_type: "*formatter.buildCacheContext",
    headers: &[
        ("ID", "CACHE ID"),
        ("CacheType", "CACHE TYPE"),
        ("Size", "SIZE"),
        ("CreatedSince", "CREATED"),
        ("LastUsedSince", "LAST USED"),
        ("UsageCount", "USAGE"),
        ("Shared", "SHARED"),
        ("Description", "DESCRIPTION"),
    ],
};

/// `docker search` (fields: Description IsAutomated IsOfficial Name StarCount; Description
/// shortened with `ellipsis(…, 45)` unless `--no-trunc`; IsOfficial is `[OK]` or empty).
pub const SEARCH_TABLE: &str = "table {{.Name}}\\t{{.Description}}\\t{{.StarCount}}\\t{{.IsOfficial}}";
pub const SEARCH: Columns<'static> = Columns {
    context_type: "*registry.searchContext",
    headers: &[
        ("Name", "NAME"),
        ("Description", "DESCRIPTION"),
        ("StarCount", "STARS"),
        ("IsOfficial", "OFFICIAL"),
        ("IsAutomated", "AUTOMATED"),
    ],
};

/// How a JSON null in `docker image inspect` prints under `-f`: Docker executes the
/// template on its typed Go struct first, where these nulls are nil slices (`[]`), nil maps
/// (`map[]`) or nil pointers (`<nil>`). Pass as [`super::ExecOptions::nil_hint`] /
/// [`super::Inspector::new`].
pub fn image_inspect_nil_hint(field: &str) -> Option<&'static str> {
    Some(match field {
        "RepoTags" | "RepoDigests" | "Env" | "Cmd" | "Entrypoint" | "OnBuild" | "Shell" | "Layers" | "Test"
        | "Manifests" => "[]",
        "Labels" | "Volumes" | "ExposedPorts" | "Data" => "map[]",
        "ContainerConfig" | "Config" | "Healthcheck" | "Metadata" | "Descriptor" | "Identity" | "LastTagTime" => {
            "<nil>"
        }
        _ => return None,
    })
}
