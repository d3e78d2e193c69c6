//! The command line, as clap derive structs. Flags follow Docker's.

use std::path::PathBuf;

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// The global flags' ids: listed once, in `strata --help` (as Docker lists
/// its global options only in `docker --help`).
const GLOBAL_ARGS: [&str; 4] = ["root", "storage_driver", "store_ro", "debug"];

/// Parse `argv` (the whole command line) the way Docker's CLI reports
/// mistakes: an unknown command exits 1 with `strata: 'foo' is not a strata
/// command.`, a flag error (unknown flag, bad value) exits 125, a wrong
/// number of arguments exits 1; help and version print and exit 0.
/// Returns the exit status when there is nothing to run.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, u8> {
    let cmd = Cli::command();
    let cmd = cmd.clone().after_help(global_options(&cmd));
    let e = match cmd.clone().try_get_matches_from(&argv).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    let path = command_path(&cmd, &argv);
    let context = |k: ContextKind| match e.get(k) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let (text, code) = match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return Err(0);
        }
        ErrorKind::InvalidSubcommand => {
            let what = path.strip_prefix("strata").unwrap_or("");
            (
                format!(
                    "strata: '{}' is not a strata{what} command.\nSee '{path} --help'",
                    context(ContextKind::InvalidSubcommand)
                ),
                1,
            )
        }
        ErrorKind::UnknownArgument => {
            let arg = context(ContextKind::InvalidArg);
            let arg = arg.split_once(' ').map(|(a, _)| a.to_string()).unwrap_or(arg);
            match arg.strip_prefix('-') {
                Some(long) if long.starts_with('-') => (format!("unknown flag: {arg}\nSee '{path} --help'."), 125),
                Some(short) => (
                    format!(
                        "unknown shorthand flag: '{}' in {arg}\nSee '{path} --help'.",
                        short.chars().next().unwrap_or('-')
                    ),
                    125,
                ),
                // A positional argument too many.
                None => (format!("{}See '{path} --help'.", first_line(&e)), 1),
            }
        }
        ErrorKind::MissingRequiredArgument | ErrorKind::MissingSubcommand | ErrorKind::TooFewValues => {
            (format!("{}See '{path} --help'.", first_line(&e)), 1)
        }
        _ => (format!("{}See '{path} --help'.", first_line(&e)), 125),
    };
    eprintln!("{text}");
    Err(code)
}

/// clap's message without its `error: ` prefix, usage and tips, on one line.
fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let lines: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).map(str::trim).collect();
    let line = lines.join(" ");
    format!("{}\n", line.strip_prefix("error: ").unwrap_or(&line))
}

/// The "Global Options" section of `strata --help`: the global flags are
/// hidden from every command's own list (Docker shows them only there).
fn global_options(cmd: &clap::Command) -> String {
    let mut out = String::from("Global Options:\n");
    for a in cmd.get_arguments().filter(|a| GLOBAL_ARGS.contains(&a.get_id().as_str())) {
        let short = a.get_short().map(|c| format!("-{c}, ")).unwrap_or_else(|| "    ".into());
        let long = a.get_long().unwrap_or_default();
        let value = match a.get_value_names() {
            Some(v) if a.get_action().takes_values() => format!(" <{}>", v[0]),
            _ => String::new(),
        };
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        out.push_str(&format!("  {short}--{long}{value}\n          {help}\n"));
    }
    out
}

/// `strata image ls`: the commands named on the command line.
fn command_path(root: &clap::Command, argv: &[OsString]) -> String {
    let mut path = root.get_name().to_string();
    let mut cur = root;
    let mut args = argv.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = args.next() {
        if a == "--root" || a == "--storage-driver" {
            args.next();
            continue;
        }
        if a.starts_with('-') {
            continue;
        }
        match cur.find_subcommand(a.as_ref()) {
            Some(sub) => {
                path.push(' ');
                path.push_str(sub.get_name());
                cur = sub;
            }
            None => break,
        }
    }
    path
}

/// Docker-compatible images and containers over strata's union filesystem.
#[derive(Parser, Debug)]
#[command(name = "strata", version, about)]
pub struct Cli {
    /// Store root (default /var/lib/strata for root, $XDG_DATA_HOME/strata otherwise; env STRATA_ROOT).
    #[arg(long, global = true, env = "STRATA_ROOT", hide = true)]
    pub root: Option<PathBuf>,
    /// Storage driver: fuse-overlay (default), overlay, vfs (env STRATA_STORAGE_DRIVER).
    #[arg(long = "storage-driver", global = true, env = "STRATA_STORAGE_DRIVER", hide = true)]
    pub storage_driver: Option<String>,
    /// A read-only image store whose images are listed, run and used as bases, never changed (repeatable; env STRATA_STORE_RO, `:`-separated).
    #[arg(long = "store-ro", global = true, env = "STRATA_STORE_RO", value_delimiter = ':', hide = true)]
    pub store_ro: Vec<PathBuf>,
    /// Debug logging to stderr.
    #[arg(long, short = 'D', global = true, hide = true)]
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
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
    /// Manage builds.
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Create a new container.
    Create(CreateArgs),
    /// Create and run a new container from an image.
    Run(RunArgs),
    /// Start one or more stopped containers.
    Start(StartArgs),
    /// Stop one or more running containers.
    Stop(StopArgs),
    /// Restart one or more containers.
    Restart(StopArgs),
    /// Kill one or more running containers.
    Kill(KillArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(ContainersArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Attach local standard input, output, and error streams to a running container.
    Attach(AttachArgs),
    /// Pause all processes within one or more containers.
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers.
    Unpause(ContainersArgs),
    /// Display the running processes of a container.
    Top(TopArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// List port mappings for the container.
    Port(OneContainerArgs),
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
    /// Run a command in strata's user namespace (an unprivileged user's; the host's for root).
    Unshare(UnshareArgs),
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

/// `volume …`
#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(VolumeCreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(VolumeLsArgs),
    /// Display detailed information on one or more volumes.
    Inspect(VolumeInspectArgs),
    /// Remove one or more volumes.
    #[command(visible_alias = "remove")]
    Rm(VolumeRmArgs),
    /// Remove all unused local volumes.
    Prune(VolumePruneArgs),
}

/// `volume create`
#[derive(Args, Debug)]
pub struct VolumeCreateArgs {
    /// Set metadata for a volume.
    #[arg(long)]
    pub label: Vec<String>,
    /// Volume name (random when absent).
    pub name: Option<String>,
}

/// `volume ls`
#[derive(Args, Debug)]
pub struct VolumeLsArgs {
    /// Only display volume names.
    #[arg(short, long)]
    pub quiet: bool,
    /// Format output using a custom template.
    #[arg(long)]
    pub format: Option<String>,
}

/// `volume inspect`
#[derive(Args, Debug)]
pub struct VolumeInspectArgs {
    /// Format output using a custom template.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volumes.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// `volume rm`
#[derive(Args, Debug)]
pub struct VolumeRmArgs {
    /// Force the removal of one or more volumes.
    #[arg(short, long)]
    pub force: bool,
    /// Volumes.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// `volume prune`
#[derive(Args, Debug)]
pub struct VolumePruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `builder …`
#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove build cache.
    Prune(BuilderPruneArgs),
}

/// `builder prune`
#[derive(Args, Debug)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `build`
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format.
    #[arg(short, long = "tag")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (Default is 'PATH/Dockerfile'; '-' reads it from STDIN).
    #[arg(short, long)]
    pub file: Option<String>,
    /// Set build-time variables.
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image.
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Set the networking mode for the RUN instructions during build (none or host).
    #[arg(long, default_value = "none")]
    pub network: String,
    /// Set metadata for an image.
    #[arg(long)]
    pub label: Vec<String>,
    /// Write the image ID to the file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    pub platform: Option<String>,
    /// Which builder to imitate: buildkit (default) or legacy (also DOCKER_BUILDKIT=0).
    #[arg(long)]
    pub builder: Option<String>,
    /// Set type of progress output (auto, plain, tty).
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// PATH | URL | - (the build context).
    pub context: String,
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
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
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
    /// Remove unused data.
    Prune(SystemPruneArgs),
    /// Check the store for consistency and remove what is damaged or orphaned.
    Check(SystemCheckArgs),
}

/// `container …`
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// List containers.
    #[command(visible_alias = "list")]
    Ls(PsArgs),
    /// Create a container.
    Create(CreateArgs),
    /// Create and run a new container from an image.
    Run(RunArgs),
    /// Start one or more stopped containers.
    Start(StartArgs),
    /// Stop one or more running containers.
    Stop(StopArgs),
    /// Restart one or more containers.
    Restart(StopArgs),
    /// Kill one or more running containers.
    Kill(KillArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(ContainersArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Attach local standard input, output, and error streams to a running container.
    Attach(AttachArgs),
    /// Pause all processes within one or more containers.
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers.
    Unpause(ContainersArgs),
    /// Display the running processes of a container.
    Top(TopArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// List port mappings for the container.
    Port(OneContainerArgs),
    /// Remove unused (stopped) containers.
    Prune(ContainerPruneArgs),
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
    /// Return JSON for specified type (container or image).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Display total file sizes if the type is container.
    #[arg(short, long)]
    pub size: bool,
    /// Containers or images.
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

/// `unshare [COMMAND [ARG...]]`
#[derive(Args, Debug)]
pub struct UnshareArgs {
    /// The command and its arguments (default: $SHELL, else /bin/sh).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<std::ffi::OsString>,
}

/// `system prune`
#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Prune volumes.
    #[arg(long)]
    pub volumes: bool,
    /// Provide filter values (e.g. "label=<key>=<value>").
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

/// `system check`
#[derive(Args, Debug)]
pub struct SystemCheckArgs {
    /// Remove what is damaged or orphaned.
    #[arg(short, long)]
    pub repair: bool,
    /// Skip reading every layer's content back against its digest.
    #[arg(short, long)]
    pub quick: bool,
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
    /// The container's settings.
    #[command(flatten)]
    pub flags: ContainerFlags,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(required = true, trailing_var_arg = true, value_name = "IMAGE [COMMAND] [ARG...]")]
    pub args: Vec<String>,
}

/// The flags `create` and `run` share (Docker's names).
#[derive(Args, Debug, Clone, Default)]
pub struct ContainerFlags {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set meta data on a container.
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    /// Keep STDIN open even if not attached.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Bind mount a volume (SRC:DST[:ro]).
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container (type=bind|tmpfs,…).
    #[arg(long)]
    pub mount: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Connect a container to a network (none or host).
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// Publish a container's port(s) to the host.
    #[arg(short, long = "publish")]
    pub publish: Vec<String>,
    /// Container host name.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Mount a tmpfs directory (PATH[:OPTIONS]).
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Signal to stop a container.
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container.
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Ulimit options (NAME=SOFT[:HARD]).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Security Options.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Pull image before creating ("always"|"missing"|"never").
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Runtime to use for this container (name in PATH or path; default runc).
    #[arg(long)]
    pub runtime: Option<String>,
}

/// `run`
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The container's settings.
    #[command(flatten)]
    pub flags: ContainerFlags,
    /// Run container in background and print container ID.
    #[arg(short, long)]
    pub detach: bool,
    /// Proxy received signals to the process.
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(required = true, trailing_var_arg = true, value_name = "IMAGE [COMMAND] [ARG...]")]
    pub args: Vec<String>,
}

/// `start`
#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN.
    #[arg(short, long)]
    pub interactive: bool,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `stop`, `restart`
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait for stop before killing it.
    #[arg(short = 't', long = "time")]
    pub time: Option<i64>,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `kill`
#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container.
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `logs`
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs.
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp (RFC 3339) or relative (e.g. 42m).
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (RFC 3339) or relative (e.g. 42m).
    #[arg(long)]
    pub until: Option<String>,
    /// Show extra details provided to logs.
    #[arg(long)]
    pub details: bool,
    /// Container.
    pub container: String,
}

/// `exec`
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Set environment variables.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Give extended privileges to the command.
    #[arg(long)]
    pub privileged: bool,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, value_name = "CONTAINER COMMAND [ARG...]")]
    pub args: Vec<String>,
}

/// `attach`
#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN.
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process.
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Container.
    pub container: String,
}

/// `top`
#[derive(Args, Debug)]
pub struct TopArgs {
    /// Container.
    pub container: String,
    /// ps options.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// `rename`
#[derive(Args, Debug)]
pub struct RenameArgs {
    /// Container.
    pub container: String,
    /// New name.
    pub new_name: String,
}

/// `container prune`
#[derive(Args, Debug)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. 'until=<timestamp>').
    #[arg(long)]
    pub filter: Vec<String>,
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
    /// Display total file sizes.
    #[arg(short, long)]
    pub size: bool,
    /// Show n last created containers (includes all states).
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    /// Show the latest created container (includes all states).
    #[arg(short, long)]
    pub latest: bool,
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
    /// Archive mode (copy all uid/gid information).
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH.
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
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
