//! One module per verb; `run` dispatches.

mod attach;
mod build;
mod commit;
mod container_inspect;
mod containers;
mod cp;
mod exec;
mod history;
mod image_diff;
mod images;
mod import;
mod inspect;
mod lifecycle;
mod load;
mod logs;
mod output;
mod pause;
mod prune;
mod registry;
mod rmi;
mod run;
mod save;
mod spool;
mod system_check;
mod system_df;
mod system_info;
mod system_prune;
mod tag;
mod unshare;
mod volume;

use anyhow::Result;

use crate::cli::{Cli, Command, ContainerCommand, ImageCommand, SystemCommand};
use crate::settings::Settings;

/// Run `f` for each name, printing the name when it succeeds and its error
/// (Docker's text) when it fails, going on with the rest; fails (exit 1,
/// errors already printed) if any failed. Docker's per-argument verbs
/// (`rm`, `stop`, `volume rm`, …) behave this way.
pub fn for_each_name(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let mut p = crate::printer::Printer::stdout();
    let mut failed = false;
    for n in names {
        match f(n) {
            Ok(()) => p.line(n)?,
            Err(e) => {
                failed = true;
                p.flush()?;
                eprintln!("{}", crate::printer::error_text(&e));
            }
        }
    }
    if failed {
        return Err(crate::Reported.into());
    }
    Ok(())
}

/// Docker's confirmation: print `prompt` (ending in "[y/N] ") on `out`,
/// read a line from stdin; true for `y`, `Y` or `yes`.
pub fn confirm(out: &mut dyn std::io::Write, prompt: &str) -> Result<bool> {
    use std::io::BufRead;
    write!(out, "{prompt}")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let s = Settings::resolve(&cli);
    let stages = matches!(
        cli.command,
        Command::Load(_)
            | Command::Save(_)
            | Command::Import(_)
            | Command::Pull(_)
            | Command::Push(_)
            | Command::Commit(_)
            | Command::Export(_)
            | Command::Image(
                ImageCommand::Load(_)
                    | ImageCommand::Save(_)
                    | ImageCommand::Import(_)
                    | ImageCommand::Pull(_)
                    | ImageCommand::Push(_)
            )
            | Command::Container(ContainerCommand::Commit(_) | ContainerCommand::Export(_))
    );
    if stages {
        crate::interrupt::clean_up_on_signals();
    }
    match cli.command {
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => load::run(&s, a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => save::run(&s, a),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => import::run(&s, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::run(&s, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => tag::run(&s, a),
        Command::Inspect(a) | Command::Image(ImageCommand::Inspect(a)) => inspect::run(&s, a),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => history::run(&s, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => rmi::run(&s, a),
        Command::Image(ImageCommand::Prune(a)) => prune::run(&s, a),
        Command::Image(ImageCommand::Diff(a)) => image_diff::run(&s, a),
        Command::System(SystemCommand::Df(a)) => system_df::run(&s, a),
        Command::System(SystemCommand::Info(a)) | Command::Info(a) => system_info::info(&s, a),
        Command::System(SystemCommand::Prune(a)) => system_prune::run(&s, a),
        Command::System(SystemCommand::Check(a)) => system_check::run(&s, a),
        Command::Version(a) => system_info::version(a),
        Command::Unshare(a) => unshare::run(a),
        Command::Build(a) | Command::Image(ImageCommand::Build(a)) => build::run(&s, a),
        Command::Builder(crate::cli::BuilderCommand::Prune(a)) => build::prune(&s, a),
        Command::Volume(v) => volume::run(&s, v),
        Command::Create(a) | Command::Container(ContainerCommand::Create(a)) => run::create(&s, a),
        Command::Run(a) | Command::Container(ContainerCommand::Run(a)) => run::run(&s, a),
        Command::Start(a) | Command::Container(ContainerCommand::Start(a)) => run::start(&s, a),
        Command::Stop(a) | Command::Container(ContainerCommand::Stop(a)) => lifecycle::stop(&s, a),
        Command::Restart(a) | Command::Container(ContainerCommand::Restart(a)) => lifecycle::restart(&s, a),
        Command::Kill(a) | Command::Container(ContainerCommand::Kill(a)) => lifecycle::kill(&s, a),
        Command::Wait(a) | Command::Container(ContainerCommand::Wait(a)) => lifecycle::wait(&s, a),
        Command::Logs(a) | Command::Container(ContainerCommand::Logs(a)) => logs::run(&s, a),
        Command::Exec(a) | Command::Container(ContainerCommand::Exec(a)) => exec::run(&s, a),
        Command::Attach(a) | Command::Container(ContainerCommand::Attach(a)) => run::attach(&s, a),
        Command::Pause(a) | Command::Container(ContainerCommand::Pause(a)) => lifecycle::pause(&s, a),
        Command::Unpause(a) | Command::Container(ContainerCommand::Unpause(a)) => lifecycle::unpause(&s, a),
        Command::Top(a) | Command::Container(ContainerCommand::Top(a)) => lifecycle::top(&s, a),
        Command::Rename(a) | Command::Container(ContainerCommand::Rename(a)) => lifecycle::rename(&s, a),
        Command::Port(a) | Command::Container(ContainerCommand::Port(a)) => lifecycle::port(&s, a),
        Command::Container(ContainerCommand::Prune(a)) => lifecycle::prune(&s, a),
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => containers::ps(&s, a),
        Command::Mount(a) | Command::Container(ContainerCommand::Mount(a)) => containers::mount(&s, a),
        Command::Umount(a) | Command::Container(ContainerCommand::Umount(a)) => containers::umount(&s, a),
        Command::Diff(a) | Command::Container(ContainerCommand::Diff(a)) => containers::diff(&s, a),
        Command::Commit(a) | Command::Container(ContainerCommand::Commit(a)) => commit::run(&s, a),
        Command::Export(a) | Command::Container(ContainerCommand::Export(a)) => containers::export(&s, a),
        Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => containers::rm(&s, a),
        Command::Cp(a) | Command::Container(ContainerCommand::Cp(a)) => cp::run(&s, a),
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => registry::pull(&s, a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => registry::push(&s, a),
        Command::Login(a) => registry::login(a),
        Command::Logout(a) => registry::logout(a),
        Command::Search(a) => registry::search(a),
    }
}
