//! The command line, as clap derive structs. Flags follow Docker's.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Docker-compatible images and containers over strata's union filesystem.
#[derive(Parser, Debug)]
#[command(name = "strata", version, about)]
pub struct Cli {
    /// Store root (default /var/lib/strata for root, $XDG_DATA_HOME/strata otherwise; env STRATA_ROOT).
    #[arg(long, global = true, env = "STRATA_ROOT")]
    pub root: Option<PathBuf>,
    /// Storage driver: fuse-overlay (default), overlay, vfs (env STRATA_STORAGE_DRIVER).
    #[arg(long = "storage-driver", short = 's', global = true, env = "STRATA_STORAGE_DRIVER")]
    pub storage_driver: Option<String>,
    /// Debug logging to stderr.
    #[arg(long, short = 'D', global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Every verb.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load images from a tar archive or STDIN.
    Load(LoadArgs),
    /// Save images to a tar archive (STDOUT by default).
    Save(SaveArgs),
    /// Import a filesystem tarball as an image.
    Import(ImportArgs),
    /// List images.
    Images(ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Display detailed information on images.
    Inspect(InspectArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Remove images.
    Rmi(RmiArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage strata.
    #[command(subcommand)]
    System(SystemCommand),
    /// Create a container (a writable layer over an image).
    Create(CreateArgs),
    /// List containers.
    Ps(PsArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Mount a container's root filesystem and print its path.
    Mount(ContainersArgs),
    /// Unmount a container's root filesystem.
    #[command(alias = "unmount")]
    Umount(ContainersArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(OneContainerArgs),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Export a container's filesystem as a tar archive.
    Export(ExportArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Copy files between a container and the host.
    Cp(CpArgs),
    /// Show version information.
    Version(FormatArgs),
    /// Display system-wide information.
    Info(FormatArgs),
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Log in to a registry.
    Login(LoginArgs),
    /// Log out from a registry.
    Logout(LogoutArgs),
    /// Search a registry for images.
    Search(SearchArgs),
}

/// `image …`
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Remove images.
    Rm(RmiArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    /// Display detailed information on images.
    Inspect(InspectArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Tag an image.
    Tag(TagArgs),
    /// Load images.
    Load(LoadArgs),
    /// Save images.
    Save(SaveArgs),
    /// Import a filesystem tarball.
    Import(ImportArgs),
    /// Changes between two images' filesystems.
    Diff(ImageDiffArgs),
    /// Download an image.
    Pull(PullArgs),
    /// Upload an image.
    Push(PushArgs),
}

/// `system …`
#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show disk usage.
    Df(DfArgs),
    /// Display system-wide information.
    Info(FormatArgs),
}

/// `container …`
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// List containers.
    #[command(visible_alias = "list")]
    Ls(PsArgs),
    /// Create a container.
    Create(CreateArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Mount a container.
    Mount(ContainersArgs),
    /// Unmount a container.
    Umount(ContainersArgs),
    /// Changes of a container.
    Diff(OneContainerArgs),
    /// Commit a container.
    Commit(CommitArgs),
    /// Export a container.
    Export(ExportArgs),
    /// Copy files between a container and the host.
    Cp(CpArgs),
}

/// `load`
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file (or OCI layout directory), instead of STDIN.
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `save`
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Images.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `import`
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long = "change")]
    pub change: Vec<String>,
    /// Set commit message for imported image.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    pub platform: Option<String>,
    /// File, URL or `-`.
    pub source: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// `images`
#[derive(Args, Debug, Default)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images).
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided.
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// `tag`
#[derive(Args, Debug)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

/// `inspect`
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Images.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `history`
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub human: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
    /// Image.
    pub image: String,
}

/// `rmi`
#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image.
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents.
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    /// Images.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `image prune`
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>", "label=…").
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

/// `system df`
#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short, long)]
    pub verbose: bool,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
}

/// `image diff`
#[derive(Args, Debug)]
pub struct ImageDiffArgs {
    /// Output format: `json` or a template.
    #[arg(long)]
    pub format: Option<String>,
    /// The base image.
    pub from: String,
    /// The image to compare with it.
    pub to: String,
}

/// `create`
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set meta data on a container.
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    /// Image.
    pub image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `ps`
#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers.
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided.
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
}

/// Commands taking containers.
#[derive(Args, Debug)]
pub struct ContainersArgs {
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Commands taking one container.
#[derive(Args, Debug)]
pub struct OneContainerArgs {
    /// Container.
    pub container: String,
}

/// `commit`
#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author.
    #[arg(short, long)]
    pub author: Option<String>,
    /// Commit message.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long = "change")]
    pub change: Vec<String>,
    /// Pause container during commit (accepted; strata containers do not run).
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub pause: bool,
    /// Container.
    pub container: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// `export`
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Container.
    pub container: String,
}

/// `rm`
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal (unmounts a mounted container).
    #[arg(short, long)]
    pub force: bool,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `pull`
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Download all tagged images in the repository.
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Set platform if server is multi-platform capable (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// NAME[:TAG|@DIGEST]
    pub name: String,
}

/// `push`
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push all tags of the repository.
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG]
    pub name: String,
}

/// `login`
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password.
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Registry (default docker.io).
    pub server: Option<String>,
}

/// `logout`
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry (default docker.io).
    pub server: Option<String>,
}

/// `search`
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Max number of search results.
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Pretty-print search using a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Filter output based on conditions provided.
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// [REGISTRY/]TERM
    pub term: String,
}

/// `cp`
#[derive(Args, Debug)]
pub struct CpArgs {
    /// CONTAINER:SRC_PATH or a host path.
    pub src: String,
    /// CONTAINER:DEST_PATH or a host path.
    pub dst: String,
}

/// Commands whose only flag is `--format`.
#[derive(Args, Debug)]
pub struct FormatArgs {
    /// Format output using a custom template.
    #[arg(short, long)]
    pub format: Option<String>,
}
